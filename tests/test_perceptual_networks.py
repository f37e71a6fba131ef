"""The perceptual networks at any layer: AlexNet after each ReLU, EfficientNet-Lite at each
stage, several layers in one pass, and the layers too deep for the images refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from percae.loss import PerceptualLoss
from percae.perceptual_networks import (
    PerceptualNetworkUnavailable,
    build_perceptual_network,
    canonical_net,
    check_feature_size,
    layer_depth,
)


def _x(seed=0, n=2, size=64):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "layer, end, shape",
    [
        ("relu1", 2, (64, 15, 15)),
        ("relu2", 5, (192, 7, 7)),
        ("relu3", 8, (384, 3, 3)),
        ("relu4", 10, (256, 3, 3)),
        ("relu5", 12, (256, 3, 3)),
    ],
)
@pytest.mark.slow
def test_alexnet_cut_after_each_relu_is_torchvision_s_trunk_run_to_it(layer, end, shape):
    from torchvision.models import alexnet

    torch.manual_seed(0)  # alexnet-random's weights: torchvision's AlexNet drawn with seed 0
    reference = alexnet(weights=None).features[:end].eval()
    net = build_perceptual_network(f"alexnet-random:{layer}")
    with torch.no_grad():
        got = net(_x())
        assert torch.equal(got, reference(_x()))
    assert got.shape[1:] == shape
    assert isinstance(reference[end - 1], torch.nn.ReLU)


@pytest.mark.slow
def test_the_paper_s_cut_is_alexnet_s_default_and_keeps_its_weights():
    a, b = (
        build_perceptual_network("alexnet-random"),
        build_perceptual_network("alexnet-random:relu5"),
    )
    assert canonical_net("alexnet-random") == "alexnet-random:relu2"
    with torch.no_grad():
        assert torch.equal(a(_x()), b[:5](_x()))  # relu2's convolutions, in every deeper cut


def _library_lite(name: str):
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    from percae.perceptual_networks.efficientnet import PACKAGES

    module, cls = PACKAGES[name]
    ref = EfficientNet.from_name(name)
    path = getattr(importlib.import_module(module), cls).get_model_file_path()
    ref.load_state_dict(torch.load(path, weights_only=True))
    return ref.eval()


def _library_until_depthwise(ref, x, block_index):
    """The library's own unfused network: ImageNet-normalised input, stem, the blocks before
    `block_index` whole, and that block up to its depthwise ReLU6."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = ref._swish(ref._bn0(ref._conv_stem((x - mean) / std)))
    for block in ref._blocks[:block_index]:
        h = block(h)
    b = ref._blocks[block_index]
    if b._block_args.expand_ratio != 1:
        h = b._swish(b._bn0(b._expand_conv(h)))
    return b._swish(b._bn1(b._depthwise_conv(h)))


@pytest.mark.parametrize(
    "name, layer, block, size",
    [
        ("efficientnet-lite0", "stage1", 0, 32),
        ("efficientnet-lite0", "stage4", 7, 4),
        ("efficientnet-lite1", "stage3", 6, 8),
        ("efficientnet-lite2", "stage2", 3, 16),
    ],
)
def test_an_efficientnet_stage_ends_at_its_last_block_s_depthwise_relu(name, layer, block, size):
    net = build_perceptual_network(f"{name}:{layer}")
    ref = _library_lite(name)
    with torch.no_grad():
        got, expected = net(_x(1)), _library_until_depthwise(ref, _x(1), block)
    assert got.shape[-2:] == (size, size)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_several_layers_give_each_one_s_features_in_one_pass():
    for spec, singles in (
        ("alexnet-random:relu1+relu3", ["alexnet-random:relu1", "alexnet-random:relu3"]),
        ("efficientnet-lite0:block1+stage3", ["efficientnet-lite0", "efficientnet-lite0:stage3"]),
    ):
        both = build_perceptual_network(spec)
        with torch.no_grad():
            out = both(_x(2))
            assert isinstance(out, tuple) and len(out) == 2
            for features, single in zip(out, singles):
                expected = build_perceptual_network(single)(_x(2))
                assert torch.allclose(features, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_a_sum_of_layers_is_the_sum_of_each_layer_s_loss_and_calibrates_on_all_of_them():
    both = PerceptualLoss(build_perceptual_network("alexnet-random:relu1+relu2"))
    one = PerceptualLoss(build_perceptual_network("alexnet-random:relu1"))
    two = PerceptualLoss(build_perceptual_network("alexnet-random:relu2"))
    a, b = _x(3, n=4), _x(4, n=4)
    assert both(a, b).item() == pytest.approx(one(a, b).item() + two(a, b).item(), rel=1e-6)
    # The scale's rule: pixel variance over the summed variances of the layers' features.
    inverse = 1 / both.calibrate(a)
    assert inverse == pytest.approx(1 / one.calibrate(a) + 1 / two.calibrate(a), rel=1e-6)


def test_the_chunked_cpu_path_of_a_sum_of_layers_equals_the_whole_batch():
    net = build_perceptual_network("alexnet-random:relu1+relu3")
    whole, chunked = PerceptualLoss(net, cpu_chunk=None), PerceptualLoss(net, cpu_chunk=3)
    r, t = _x(5, n=7).requires_grad_(True), _x(6, n=7)
    value = whole(r, t)
    (grad,) = torch.autograd.grad(value, r)
    r2 = r.detach().clone().requires_grad_(True)
    value2 = chunked(r2, t)
    (grad2,) = torch.autograd.grad(value2, r2)
    assert value2.item() == pytest.approx(value.item(), rel=1e-5)
    assert F.cosine_similarity(grad.flatten(), grad2.flatten(), dim=0) > 0.9999


def test_a_layer_that_leaves_the_images_under_2x2_features_is_refused():
    deep = build_perceptual_network("torchvision:alexnet:features.12")  # the last max-pool: 1 x 1
    with pytest.raises(PerceptualNetworkUnavailable, match="leaves 64 px images as 1 x 1 features"):
        check_feature_size(deep, "torchvision:alexnet:features.12", 64)
    check_feature_size(build_perceptual_network("efficientnet-lite0:stage7"), "lite0", 64)  # 2 x 2


def test_each_layer_has_a_depth_in_its_network():
    assert layer_depth("alexnet-random:relu4") == ("alexnet-random", 4)
    assert layer_depth("alexnet") == ("alexnet", 2)
    assert layer_depth("efficientnet-lite0") == ("efficientnet-lite0", 2)  # block1: stage 2
    assert layer_depth("efficientnet-lite1:stage6") == ("efficientnet-lite1", 6)
    assert layer_depth("efficientnet-lite0:stem") == ("efficientnet-lite0", 0)
    assert layer_depth("alexnet:relu1+relu3") == ("alexnet", 3)
    assert layer_depth("torchvision:vgg11:relu3_2") == ("torchvision:vgg11", 3)
