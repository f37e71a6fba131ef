"""Reading a perceptual network's weights strictly, and freezing the network."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import Refusal


class PerceptualNetworkUnavailable(Refusal, RuntimeError):
    """A perceptual network cannot be built: unknown, its weights missing, or its extra absent."""


def freeze(network: nn.Module) -> nn.Module:
    for p in network.parameters():
        p.requires_grad_(False)
    return network.eval()


def read_state_dict(path: str | os.PathLike) -> dict:
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


def load_trunk_weights(
    trunk: nn.Module, state: dict, prefix: str, source: str, what: str = "a torchvision AlexNet"
) -> None:
    """Strictly load the keys the trunk uses; a file lacking any of them is refused."""
    wanted = {k: f"{prefix}{k}" for k in trunk.state_dict()}
    missing = [full for full in wanted.values() if full not in state]
    if missing:
        raise PerceptualNetworkUnavailable(
            f"{source} is not {what} state dict: it lacks {', '.join(missing)}"
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
            f"{source} does not fit {what}: {'; '.join(shapes[:2]) or 'its tensors do not load'}"
        ) from None


def load_full_weights(net: nn.Module, state: dict, source: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise PerceptualNetworkUnavailable(
            f"{source} does not match this architecture ({first})"
        ) from None
