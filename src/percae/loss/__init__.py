"""Reconstruction losses by name, the scale that gives any of them pixel MSE's, and the VAE's KL
term: pixel MSE (`pixel.py`), the perceptual loss at any network and layer (`perceptual.py`),
SSIM and MS-SSIM (`structural.py`), the Laplacian-pyramid L1 (`laplacian.py`).

A loss is one module with a `ReconstructionLoss` subclass (what it needs it says itself: a
network, a calibrated scale, targets to keep) and one entry in `LOSSES`.
"""

from __future__ import annotations

import math
import os

import torch

from ..config import ConfigError
from .base import ReconstructionLoss
from .laplacian import LaplacianL1Loss
from .perceptual import PerceptualLoss
from .pixel import PixelLoss
from .structural import MSSSIMLoss, SSIMLoss

__all__ = [
    "AUTO_SCALE",
    "CALIBRATION_IMAGES",
    "LOSSES",
    "LaplacianL1Loss",
    "MSSSIMLoss",
    "PerceptualLoss",
    "PixelLoss",
    "ReconstructionLoss",
    "SSIMLoss",
    "build_loss",
    "calibrated_scale",
    "check_loss_name",
    "check_perceptual_scale",
    "kl_divergence",
]

LOSSES: dict[str, type[ReconstructionLoss]] = {
    "pixel": PixelLoss,
    "perceptual": PerceptualLoss,
    "ssim": SSIMLoss,
    "ms-ssim": MSSSIMLoss,
    "lap1": LaplacianL1Loss,
}

# Images the scale is calibrated on: a fixed, evenly spaced sample of the training images.
CALIBRATION_IMAGES = 1024
AUTO_SCALE = "auto"


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-mean(1 + logvar - mu^2 - exp(logvar)): twice KL(N(mu, sigma) || N(0, 1)), averaged
    over batch and latent dimensions, exactly as the study's code (gamma is calibrated to it)."""
    return -torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def check_loss_name(name: str) -> type[ReconstructionLoss]:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def build_loss(
    name: str, perceptual_net: str = "alexnet", weights_path: str | os.PathLike | None = None
) -> ReconstructionLoss:
    """`build_loss("pixel")`, `build_loss("ssim")` or `build_loss("perceptual", "alexnet")`
    (the network is used only by a loss that `uses_network`)."""
    cls = check_loss_name(name)
    return cls.from_settings(perceptual_net, weights_path)


def check_perceptual_scale(value) -> None:
    """The one rule of the scale setting: a finite number above 0, or "auto"."""
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


def calibrated_scale(loss: ReconstructionLoss, images: torch.Tensor) -> float:
    """The factor that gives `loss` the scale of pixel MSE on `images` (float (N, 3, H, W) in
    [0, 1], N >= 2): `loss.calibrate` (docs/results/perceptual-scale.md)."""
    return loss.calibrate(images)
