"""AlexNet's trunk, with torchvision's ImageNet weights (the paper's network) or random seeded
ones (its control), cut after any of its five ReLUs."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .weights import PerceptualNetworkUnavailable, load_trunk_weights, read_state_dict

# The ReLUs of torchvision's `alexnet().features`: relu1 (conv1), relu2 (conv2, the paper's
# cut), relu3 .. relu5 (conv3 .. conv5), by the index of the module that ends each cut.
LAYERS = {"relu1": 2, "relu2": 5, "relu3": 8, "relu4": 10, "relu5": 12}
DEFAULT_LAYER = "relu2"

# The quick preset's, on every machine alike: offline, and the one that reproduced the paper's
# direction best of those that install offline (docs/results/offline-networks).
QUICK_PERCEPTUAL_NETWORK = "alexnet-random"


def alexnet_cache_path() -> Path:
    from torchvision.models import AlexNet_Weights

    return (
        Path(torch.hub.get_dir())
        / "checkpoints"
        / os.path.basename(AlexNet_Weights.IMAGENET1K_V1.url)
    )


def _features(layer: str) -> nn.Sequential:
    from torchvision.models import alexnet

    # conv1, ReLU, max-pool, conv2, ReLU, ...: cut after the layer's ReLU.
    return alexnet(weights=None).features[: LAYERS[layer]]


def alexnet_imagenet(layer: str, weights_path: str | os.PathLike | None = None) -> nn.Module:
    """The paper's network: ImageNet AlexNet up to a ReLU (relu2, the paper's), images in [0, 1]
    as they are."""
    from torchvision.models import AlexNet_Weights

    trunk = _features(layer)
    if weights_path is not None and str(weights_path) != "imagenet":
        load_trunk_weights(trunk, read_state_dict(weights_path), "features.", str(weights_path))
        return trunk
    cached = alexnet_cache_path()
    if cached.is_file():
        load_trunk_weights(trunk, read_state_dict(cached), "features.", str(cached))
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
    load_trunk_weights(trunk, state, "features.", AlexNet_Weights.IMAGENET1K_V1.url)
    return trunk


def alexnet_random(layer: str, weights_path: str | os.PathLike | None = None) -> nn.Module:
    """Control: AlexNet's trunk with random weights, seeded (the same whole network is drawn
    for every cut, so relu2's convolutions are the same in every cut that holds them)."""
    if weights_path is not None:
        raise PerceptualNetworkUnavailable(
            "alexnet-random takes no weights file; drop --perceptual-weights"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _features(layer)
