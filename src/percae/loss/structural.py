"""Structural similarity: 1 - SSIM and 1 - MS-SSIM (Wang et al. 2004, 2003), from piq.

piq was chosen by measurement (docs/results/loss-sweep/README.md): of torchmetrics, kornia,
pytorch-msssim and piq, its SSIM agrees with scikit-image's `structural_similarity` (Gaussian
window 11, sigma 1.5, no sample covariance, borders cropped) to 1e-5 on LunarLander frames and
was the fastest, and it alone computes MS-SSIM on 64 px images: with the standard window, 64 px
allow 3 of the 5 scales, whose weights (0.0448, 0.2856, 0.3001) piq renormalises to sum to 1.
"""

from __future__ import annotations

import torch

from ..config import ConfigError
from .base import ReconstructionLoss

KERNEL = 11  # the standard Gaussian window (sigma 1.5)
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # MS-SSIM's, finest scale first


def _piq():
    try:
        import piq
    except ImportError:
        raise ConfigError(
            "the ssim and ms-ssim losses need the losses extra: pip install 'percae[losses]'"
        ) from None
    return piq


def ms_ssim_scales(image_size: int) -> int:
    """As many of MS-SSIM's five scales as an image of `image_size` px allows: its coarsest
    scale must still hold the 11-px window (piq's rule: (11 - 1) * 2^(scales - 1) + 1 px)."""
    scales = 1
    while scales < len(SCALE_WEIGHTS) and (KERNEL - 1) * 2**scales + 1 <= image_size:
        scales += 1
    return scales


class SSIMLoss(ReconstructionLoss):
    """1 - SSIM between reconstruction and image, averaged over images and channels, in
    float32 whatever the autocast (SSIM's means and variances are differences of nearby
    values)."""

    description = "1 - SSIM (Gaussian window 11, sigma 1.5)"

    def __init__(self, name: str = "ssim", scale: float = 1.0):
        super().__init__(name, scale)
        self.piq = _piq()

    @classmethod
    def from_settings(cls, network=None, weights_path=None) -> "SSIMLoss":
        return cls()

    def unscaled(self, reconstruction, target) -> torch.Tensor:
        with torch.autocast(reconstruction.device.type, enabled=False):
            similarity = self.piq.ssim(
                reconstruction.float(), target.float(), data_range=1.0, downsample=False
            )
        return 1 - similarity


class MSSSIMLoss(SSIMLoss):
    """1 - MS-SSIM, with as many scales as the images allow (`ms_ssim_scales`)."""

    description = "1 - MS-SSIM (as many of its 5 scales as the image size allows)"

    def __init__(self, name: str = "ms-ssim", scale: float = 1.0):
        super().__init__(name, scale)

    def unscaled(self, reconstruction, target) -> torch.Tensor:
        scales = ms_ssim_scales(min(reconstruction.shape[-2:]))
        weights = torch.tensor(SCALE_WEIGHTS[:scales], device=reconstruction.device)
        with torch.autocast(reconstruction.device.type, enabled=False):
            similarity = self.piq.multi_scale_ssim(
                reconstruction.float(), target.float(), data_range=1.0, scale_weights=weights
            )
        return 1 - similarity
