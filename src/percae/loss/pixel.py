"""Pixel-wise mean squared error: the paper's AE and VAE loss, and every scale's reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ReconstructionLoss


class PixelLoss(ReconstructionLoss):
    """Mean squared error between reconstruction and image, per pixel and channel, in float32
    (under autocast the decoder's output is bf16; the loss and its gradient are not)."""

    scaled = False
    description = "pixel-wise mean squared error"

    def __init__(self, name: str = "pixel"):
        super().__init__(name)

    @classmethod
    def from_settings(cls, network=None, weights_path=None) -> "PixelLoss":
        return cls()

    def unscaled(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(reconstruction.float(), target.float())

    def forward(self, reconstruction, target, target_features=None) -> torch.Tensor:
        return self.unscaled(reconstruction, target)
