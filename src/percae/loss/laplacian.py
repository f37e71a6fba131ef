"""The Laplacian-pyramid L1 loss, Lap1 (Bojanowski et al. 2018, "Optimizing the latent space of
generative networks"): the L1 distance of each level of the two images' Laplacian pyramids
(kornia builds them), weighted 2^(2j) at level j per pixel of the image, i.e. each level's mean
absolute difference, summed."""

from __future__ import annotations

import torch

from ..config import ConfigError
from .base import ReconstructionLoss

# Band-pass levels down to 8 px at 64 px, and the low-pass residual there.
LEVELS = 4


class LaplacianL1Loss(ReconstructionLoss):
    description = f"Laplacian-pyramid L1 ({LEVELS} levels, kornia)"

    def __init__(self, name: str = "lap1", scale: float = 1.0, levels: int = LEVELS):
        super().__init__(name, scale)
        try:
            from kornia.geometry.transform import build_laplacian_pyramid
        except ImportError:
            raise ConfigError(
                "the lap1 loss needs the losses extra: pip install 'percae[losses]'"
            ) from None
        self.pyramid, self.levels = build_laplacian_pyramid, levels

    @classmethod
    def from_settings(cls, network=None, weights_path=None) -> "LaplacianL1Loss":
        return cls()

    def unscaled(self, reconstruction, target) -> torch.Tensor:
        with torch.autocast(reconstruction.device.type, enabled=False):
            mine = self.pyramid(reconstruction.float(), self.levels)
            theirs = self.pyramid(target.float(), self.levels)
            return sum((a - b).abs().mean() for a, b in zip(mine, theirs))
