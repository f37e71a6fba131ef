"""Reconstruction losses: pixel-wise MSE and perceptual loss (MSE between the sigmoid
of a frozen pretrained network's features of the image and of its reconstruction, at a
calibrated scale), and the VAE's KL term. The networks themselves: `perceptual_networks`.

A `PerceptualLoss` owns its network: it is frozen and in eval mode from the moment it
is built, is never handed to the autoencoder's optimizer, and never saved with it.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError
from .perceptual_networks import build_perceptual_network, freeze


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-mean(1 + logvar - mu^2 - exp(logvar)): twice KL(N(mu, sigma) || N(0, 1)), averaged
    over batch and latent dimensions, exactly as the study's code (gamma is calibrated to it)."""
    return -torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


class PixelLoss(nn.Module):
    """Mean squared error between reconstruction and image, per pixel and channel, in float32
    (under autocast the decoder's output is bf16; the loss and its gradient are not)."""

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(reconstruction.float(), target.float())


class PerceptualLoss(nn.Module):
    """`scale` x MSE between sigmoid(network(reconstruction)) and sigmoid(network(target)).

    The network, its sigmoid and the reduction run in float32 whatever the autocast: the
    features differ between an image and a good reconstruction by less than bf16 resolves
    (alexnet-random's sigmoid works near 0.5, where bf16 steps are 2^-8), so in bf16 the loss
    and its gradient are those of rounding noise (docs/results/perceptual-precision).

    `scale` makes the term commensurate with pixel MSE (see `calibrated_scale`); 1 is the
    paper's loss.

    On a CPU the reconstruction's features are computed in chunks of `cpu_chunk` images,
    each recomputed during backward rather than stored: the frozen network is in eval
    mode, so the loss and its gradient are those of the whole batch, and the activations
    held at once are one chunk's (docs/performance.md). On CUDA the batch goes through
    whole: memory is ample there and recomputing costs time.
    """

    def __init__(
        self, network: nn.Module, name: str = "", cpu_chunk: int | None = 128, scale: float = 1.0
    ):
        super().__init__()
        self.network = freeze(network)
        self.name = name
        self.cpu_chunk = cpu_chunk
        self.scale = float(scale)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # The network's BatchNorm statistics (EfficientNet) must never move.
        super().train(mode)
        self.network.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """sigmoid(network(images)) in float32, whatever the autocast around it."""
        with torch.autocast(images.device.type, enabled=False):
            return torch.sigmoid(self.network(images.float()))

    def forward(
        self,
        reconstruction: torch.Tensor,
        target: torch.Tensor,
        target_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`target_features`, where given, must be `features(target)`: they depend on the image
        alone, so training computes them once per image rather than once per epoch (see
        `feature_cache.FeatureCache`)."""
        if target_features is None:
            with torch.no_grad():
                target_features = self.features(target)
        target_features = target_features.float()
        chunk = self.cpu_chunk
        if (
            not chunk
            or reconstruction.device.type != "cpu"
            or len(reconstruction) <= chunk
            or not torch.is_grad_enabled()
        ):
            return self.scale * F.mse_loss(self.features(reconstruction), target_features)
        from torch.utils.checkpoint import checkpoint

        total = reconstruction.new_zeros((), dtype=torch.float32)
        for r, t in zip(reconstruction.split(chunk), target_features.split(chunk)):
            features = checkpoint(self.features, r, use_reentrant=False)
            total = total + F.mse_loss(features, t, reduction="sum")
        return self.scale * (total / target_features.numel())


# Images the scale is calibrated on: a fixed, evenly spaced sample of the training images.
CALIBRATION_IMAGES = 1024
AUTO_SCALE = "auto"


def check_perceptual_scale(value) -> None:
    """The one rule of the perceptual scale setting: a finite number above 0, or "auto"."""
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


@torch.no_grad()
def calibrated_scale(loss: PerceptualLoss, images: torch.Tensor) -> float:
    """The variance of the pixels over the variance of the network's sigmoid features, each
    taken over the images per element and averaged over elements: the factor that gives the
    perceptual term the scale of pixel MSE, so that a KL weight means the same for every
    network (the paper's gamma was set for pixels and ImageNet AlexNet's feature scale).
    `images`: float (N, 3, H, W) in [0, 1], N >= 2."""
    features = torch.cat([loss.features(chunk) for chunk in images.split(128)]).double()
    pixels = images.double()
    pixel_var = pixels.var(0, correction=0).mean().item()
    feature_var = features.var(0, correction=0).mean().item()
    if not (pixel_var > 0 and feature_var > 0 and math.isfinite(pixel_var / feature_var)):
        raise ConfigError(
            f"cannot calibrate the perceptual scale: the variance over the training images is "
            f"{pixel_var:.3g} for pixels and {feature_var:.3g} for {loss.name or 'the network'}'s "
            "features; set the scale to a number"
        )
    return pixel_var / feature_var


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "pixel": lambda net, weights: PixelLoss(),
    "perceptual": lambda net, weights: PerceptualLoss(
        build_perceptual_network(net, weights), name=net
    ),
}


def build_loss(
    name: str, perceptual_net: str = "alexnet", weights_path: str | os.PathLike | None = None
) -> nn.Module:
    """`build_loss("pixel")` or `build_loss("perceptual", "alexnet")`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name](perceptual_net, weights_path)
