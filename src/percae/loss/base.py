"""What training asks of a reconstruction loss, and the one rule of its scale."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from ..config import ConfigError


class ReconstructionLoss(nn.Module):
    """A reconstruction loss as training uses it: `loss(reconstruction, target)` (float
    (B, 3, S, S) in [0, 1]) -> a float32 scalar, `scale` times the loss itself, computed in
    float32 whatever the autocast around it where bf16 would bend it.

    What a loss says of itself, so that training asks it rather than its type:
    - `uses_network`: it is built from a perceptual network (`--perceptual-net`);
    - `scaled`: `scale` applies (every loss but pixel MSE, the scale's reference), calibrated
      by `calibrate` when the setting is "auto";
    - `keeps_targets`: `target_features(target)` is what the loss computes of the target in
      every call and that depends on the target alone (a network's features, a tensor or a
      tuple of them), so that training computes it once per image (`feature_cache.
      FeatureCache`) and passes it back as `target_features`.
    """

    uses_network: ClassVar[bool] = False
    keeps_targets: ClassVar[bool] = False
    scaled: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def __init__(self, name: str, scale: float = 1.0):
        super().__init__()
        self.name, self.scale = name, float(scale)

    def target_features(self, target: torch.Tensor):
        return None

    def unscaled(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss itself (no scale), float32."""
        raise NotImplementedError

    def forward(self, reconstruction, target, target_features=None) -> torch.Tensor:
        return self.scale * self.unscaled(reconstruction, target)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> float:
        """The factor that gives this loss the scale of pixel MSE: their ratio between pairs of
        different training images (each of `images`, float (N, 3, S, S), N >= 2, with the one
        half the sample away), so that a KL weight means the same for every loss (the
        paper's gamma was set for pixels)."""
        partners = images.roll(len(images) // 2, dims=0)
        pixel = sum(
            ((a.double() - b.double()) ** 2).mean().item() * len(a)
            for a, b in zip(images.split(128), partners.split(128))
        )
        mine = sum(
            self.unscaled(a, b).double().item() * len(a)
            for a, b in zip(images.split(128), partners.split(128))
        )
        return checked_scale(pixel, mine, self.name)


def checked_scale(pixel: float, mine: float, name: str) -> float:
    if not (pixel > 0 and mine > 0 and math.isfinite(pixel / mine)):
        raise ConfigError(
            f"cannot calibrate the scale of {name or 'the loss'}: over the training images it "
            f"varies by {mine:.3g} where their pixels vary by {pixel:.3g}; set the scale to a "
            "number"
        )
    return pixel / mine
