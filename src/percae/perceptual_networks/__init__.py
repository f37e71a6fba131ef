"""The perceptual networks, by name and layer: `NET`, `NET:LAYER` or `NET:LAYER+LAYER...`
(several layers summed, as DFC-VAE's relu1_1+relu2_1+relu3_1), where NET is AlexNet (ImageNet,
or its random control), an ImageNet EfficientNet-Lite (lite0, lite1, lite2), or any torchvision
architecture (`torchvision:ARCH:LAYER`); their weights (cached, downloaded with a hash check, or
a file); and which network a command uses.

Every network is built frozen and in eval mode, cut after a ReLU, as lpips builds its trunks;
one layer gives a tensor of features, several a tuple of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import alexnet, efficientnet, torchvision_trunks
from .alexnet import QUICK_PERCEPTUAL_NETWORK, alexnet_cache_path
from .weights import PerceptualNetworkUnavailable, freeze

__all__ = [
    "PERCEPTUAL_NETWORKS",
    "PerceptualNetworkUnavailable",
    "QUICK_PERCEPTUAL_NETWORK",
    "alexnet_cache_path",
    "build_perceptual_network",
    "check_feature_size",
    "check_perceptual_net_name",
    "describe_weights",
    "freeze",
    "layer_depth",
    "perceptual_net_note",
]


@dataclass(frozen=True)
class Network:
    """A network that can be cut at named layers: `build(layers, weights_path)` returns the
    trunk run to the deepest of `layers` (a tensor out for one layer, a tuple for several)."""

    build: Callable[[list[str], str | os.PathLike | None], nn.Module]
    layers: tuple[str, ...]
    default: str
    weights: str  # where its weights come from, in words
    depth: Callable[[str], int]  # a layer's depth in the network, for figures


class _Taps(nn.Module):
    """The outputs of several modules of a trunk in one pass through it, in the order given."""

    def __init__(self, trunk: nn.Module, ends: list[nn.Module]):
        super().__init__()
        self.trunk = trunk
        self._seen: dict[int, torch.Tensor] = {}
        for i, module in enumerate(ends):
            module.register_forward_hook(lambda m, args, out, i=i: self._seen.__setitem__(i, out))
        self._count = len(ends)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._seen.clear()
        self.trunk(x)
        outputs = tuple(self._seen[i] for i in range(self._count))
        self._seen.clear()
        return outputs


def _alexnet(build_one: Callable) -> Callable:
    def build(layers: list[str], weights_path) -> nn.Module:
        deepest = max(layers, key=alexnet.LAYERS.__getitem__)
        trunk = build_one(deepest, weights_path)
        if len(layers) == 1:
            return trunk
        return _Taps(trunk, [trunk[alexnet.LAYERS[layer] - 1] for layer in layers])

    return build


def _efficientnet(name: str) -> Callable:
    def build(layers: list[str], weights_path) -> nn.Module:
        cuts = [efficientnet.layers(name)[layer] for layer in layers]
        trunk, ends = efficientnet.efficientnet_lite(name, cuts, weights_path)
        return trunk if len(layers) == 1 else _Taps(trunk, ends)

    return build


def _alexnet_depth(layer: str) -> int:
    return int(layer.removeprefix("relu"))


PERCEPTUAL_NETWORKS: dict[str, Network] = {
    "alexnet": Network(
        _alexnet(alexnet.alexnet_imagenet),
        tuple(alexnet.LAYERS),
        alexnet.DEFAULT_LAYER,
        "ImageNet (torchvision)",
        _alexnet_depth,
    ),
    "alexnet-random": Network(
        _alexnet(alexnet.alexnet_random),
        tuple(alexnet.LAYERS),
        alexnet.DEFAULT_LAYER,
        "random, seeded: the architecture without ImageNet training",
        _alexnet_depth,
    ),
    **{
        name: Network(
            _efficientnet(name),
            tuple(efficientnet.layers(name)),
            efficientnet.DEFAULT_LAYER,
            f"ImageNet ({efficientnet.PACKAGES[name][0].replace('_', '-')}, offline)",
            lambda layer, name=name: efficientnet.depth(name, layer),
        )
        for name in efficientnet.PACKAGES
    },
}

# Names of one cut, kept for the studies that used them.
ALIASES = {"efficientnet-lite0-s8": "efficientnet-lite0:block3"}


def parse_net(spec: str) -> tuple[str, list[str]]:
    """(network, [layer, ...]) of `NET[:LAYER[+LAYER...]]` (the network's default layer where
    none is named), or (`torchvision:ARCH`, [LAYER, ...]); refused in one line, naming the
    choices, before anything is built."""
    if not isinstance(spec, str) or not spec:
        raise PerceptualNetworkUnavailable(f"a perceptual network is a name, got {spec!r}")
    if spec.startswith(torchvision_trunks.PREFIX):
        arch, layers = torchvision_trunks.parse(spec)
        return f"{torchvision_trunks.PREFIX}{arch}", layers
    spec = ALIASES.get(spec, spec)
    name, _, layer_text = spec.partition(":")
    if name not in PERCEPTUAL_NETWORKS:
        raise PerceptualNetworkUnavailable(
            f"unknown perceptual network {name!r}; choose one of "
            f"{', '.join([*PERCEPTUAL_NETWORKS, *ALIASES])} (each NET or NET:LAYER), or "
            "torchvision:ARCH:LAYER (e.g. torchvision:vgg16:relu2_2)"
        )
    network = PERCEPTUAL_NETWORKS[name]
    layers = layer_text.split("+") if layer_text else [network.default]
    unknown = [layer for layer in layers if layer not in network.layers]
    if unknown:
        raise PerceptualNetworkUnavailable(
            f"perceptual network {spec!r}: {name} has no layer {unknown[0]!r}; choose from "
            f"{', '.join(network.layers)} (several joined by +)"
        )
    if len(set(layers)) != len(layers):
        raise PerceptualNetworkUnavailable(f"perceptual network {spec!r} names a layer twice")
    return name, layers


def canonical_net(spec: str) -> str:
    """One spelling of each network and its layers (the default layer named, aliases
    resolved), so that two names of one loss are seen to be one."""
    name, layers = parse_net(spec)
    return f"{name}:{'+'.join(layers)}"


def check_perceptual_net_name(name: str) -> None:
    """Refuse an unknown network or layer in one line, without building anything large."""
    parse_net(name)


def build_perceptual_network(name: str, weights_path: str | os.PathLike | None = None) -> nn.Module:
    """A frozen, eval-mode perceptual network by name (`NET[:LAYER[+LAYER]]`, or
    `torchvision:ARCH:LAYER`)."""
    family, layers = parse_net(name)
    if family.startswith(torchvision_trunks.PREFIX):
        return freeze(torchvision_trunks.torchvision_trunk(name, weights_path))
    return freeze(PERCEPTUAL_NETWORKS[family].build(layers, weights_path))


@torch.no_grad()
def check_feature_size(network: nn.Module, name: str, image_size: int) -> None:
    """Refuse a network whose features of an image of `image_size` px are under 2 x 2 at any
    layer: the loss would compare a few numbers per channel, not an image's features."""
    out = network(torch.zeros(1, 3, image_size, image_size))
    for features in out if isinstance(out, tuple) else (out,):
        if features.dim() == 4 and min(features.shape[-2:]) < 2:
            raise PerceptualNetworkUnavailable(
                f"perceptual network {name!r} leaves {image_size} px images as "
                f"{features.shape[-2]} x {features.shape[-1]} features; choose an earlier layer "
                "(2 x 2 at least)"
            )


def layer_depth(name: str) -> tuple[str, int]:
    """(network, the depth of its deepest layer in it): for figures that put losses of one
    network along its depth (AlexNet: the ReLU's number; EfficientNet-Lite: the stage, 0 for
    the stem; a torchvision trunk: B of its reluB_C alias)."""
    family, layers = parse_net(name)
    if family.startswith(torchvision_trunks.PREFIX):
        return family, max(torchvision_trunks.depth(family, layer) for layer in layers)
    return family, max(PERCEPTUAL_NETWORKS[family].depth(layer) for layer in layers)


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
    if weights_path == "imagenet":
        return "ImageNet (torchvision)"
    try:
        family, _ = parse_net(name)
    except PerceptualNetworkUnavailable:
        return "unknown"
    if family in PERCEPTUAL_NETWORKS:
        return PERCEPTUAL_NETWORKS[family].weights
    return "random, seeded: the architecture without ImageNet training"
