"""Any torchvision classification architecture as a perceptual network, run up to named layers:
`torchvision:ARCH:LAYER[+LAYER...]`."""

from __future__ import annotations

import os

import torch
from torch import nn

from .weights import PerceptualNetworkUnavailable, load_full_weights, read_state_dict

PREFIX = "torchvision:"


def parse(spec: str) -> tuple[str, list[str]]:
    """`torchvision:ARCH:LAYER[+LAYER]` -> (ARCH, [LAYER, ...]); refuses anything else in one
    line."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] + ":" != PREFIX or not parts[1] or not parts[2]:
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
    layers = parts[2].split("+")
    if not all(layers) or len(set(layers)) != len(layers):
        raise PerceptualNetworkUnavailable(
            f"perceptual network {spec!r}: name each layer once, joined by + "
            "(e.g. torchvision:vgg16:relu1_1+relu2_1)"
        )
    return arch, layers


def layer_nodes(net: nn.Module) -> tuple[list[str], dict[str, str]]:
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
    """A torchvision architecture run up to (and including) named layers: each `LAYER` a traced
    node name (`features.4`, `layer2.1.relu_1`) or an alias `reluB_C`. Its weights are a
    torchvision-format state dict (`weights_path`), torchvision's ImageNet weights through
    its cache (`weights_path="imagenet"`, downloaded if online), or else random (seeded, so
    reproducible: offline, the only weights such a trunk can have). Images in [0, 1] go in
    as they are, as in the paper."""
    from torchvision import models
    from torchvision.models.feature_extraction import create_feature_extractor

    arch, layers = parse(spec)
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
        load_full_weights(net, state, weights.url)
    elif weights_path is not None:
        load_full_weights(net, read_state_dict(weights_path), str(weights_path))
    nodes, aliases = layer_nodes(net)
    chosen = []
    for layer in layers:
        node = aliases.get(layer, layer)
        if node not in nodes[1:]:
            named = ", ".join(list(aliases)[:8]) or ", ".join(nodes[1:9])
            raise PerceptualNetworkUnavailable(
                f"perceptual network {spec!r}: {arch} has no layer {layer!r}; name a traced layer "
                f"(e.g. {nodes[1]}) or an alias such as {named}"
            )
        chosen.append(node)
    keys = ["features"] if len(chosen) == 1 else [f"features{i}" for i in range(len(chosen))]
    extractor = create_feature_extractor(net.eval(), return_nodes=dict(zip(chosen, keys)))
    return _Output(extractor, keys)


def depth(spec: str, layer: str) -> int:
    """A layer's place among the trunk's ReLUs (1: the first), from its alias reluB_C, for
    figures that compare depths; 0 where the name says nothing of it."""
    import re

    match = re.fullmatch(r"relu(\d+)_(\d+)", layer)
    return int(match.group(1)) if match else 0


class _Output(nn.Module):
    """The tensor (or, for several layers, the tuple of tensors) a feature extractor returns,
    rather than its dict."""

    def __init__(self, extractor: nn.Module, keys: list[str]):
        super().__init__()
        self.extractor, self.keys = extractor, keys

    def forward(self, x: torch.Tensor):
        out = self.extractor(x)
        return out[self.keys[0]] if len(self.keys) == 1 else tuple(out[k] for k in self.keys)
