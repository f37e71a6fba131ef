"""The perceptual loss: MSE between the sigmoid of a frozen network's features of the image and
of its reconstruction (summed over its layers where it has several), at a calibrated scale.

A `PerceptualLoss` owns its network: it is frozen and in eval mode from the moment it is built,
is never handed to the autoencoder's optimizer, and never saved with it.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..perceptual_networks import build_perceptual_network, freeze
from .base import ReconstructionLoss, checked_scale


# What one pass of the network may hold for backward on a CPU before the batch goes in chunks.
CPU_ACTIVATION_BYTES = 256 << 20


@torch.no_grad()
def activation_bytes(network: nn.Module, image: torch.Tensor) -> int:
    """The bytes of every output of the network's layers for one image, float32: about what a
    training pass holds for backward."""
    total = [0]

    def count(module, args, out):
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * 4

    leaves = [m for m in network.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.autocast(image.device.type, enabled=False):
            network(image.float())
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _layers(features) -> tuple[torch.Tensor, ...]:
    return features if isinstance(features, tuple) else (features,)


class PerceptualLoss(ReconstructionLoss):
    """`scale` x MSE between sigmoid(network(reconstruction)) and sigmoid(network(target)); for
    a network of several layers, the sum of each layer's MSE.

    The network, its sigmoid and the reduction run in float32 whatever the autocast: the
    features differ between an image and a good reconstruction by less than bf16 resolves
    (alexnet-random's sigmoid works near 0.5, where bf16 steps are 2^-8), so in bf16 the loss
    and its gradient are those of rounding noise (docs/results/perceptual-precision).

    `scale` makes the term commensurate with pixel MSE (see `calibrate`); 1 is the paper's loss.

    On a CPU a batch whose activations through the network would take more than
    CPU_ACTIVATION_BYTES goes through in chunks (`cpu_chunk` images, or by default as many as
    fit), each recomputed during backward rather than stored: the frozen network is in eval
    mode, so the loss and its gradient are those of the whole batch, and the activations held
    at once are one chunk's (docs/performance.md). A batch that fits goes through whole, as on
    CUDA: recomputing costs a forward pass.
    """

    uses_network = True
    keeps_targets = True
    description = "perceptual: MSE of the sigmoid of a frozen network's features"

    def __init__(
        self,
        network: nn.Module,
        name: str = "",
        cpu_chunk: int | None | str = "auto",
        scale: float = 1.0,
    ):
        """`name`: the network's (its `--perceptual-net` spec), which a run records;
        `cpu_chunk`: images per chunk on a CPU, "auto" (as many as CPU_ACTIVATION_BYTES holds)
        or None (never chunked)."""
        super().__init__("perceptual", scale)
        self.network_name = name
        self.network = freeze(network)
        self.cpu_chunk = cpu_chunk
        self._image_bytes: dict[tuple, int] = {}

    @classmethod
    def from_settings(
        cls, network: str, weights_path: str | os.PathLike | None = None
    ) -> "PerceptualLoss":
        return cls(build_perceptual_network(network, weights_path), name=network)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # The network's BatchNorm statistics (EfficientNet) must never move.
        super().train(mode)
        self.network.eval()
        return self

    def features(self, images: torch.Tensor):
        """sigmoid(network(images)) in float32, whatever the autocast around it (a tuple of
        them for a network of several layers)."""
        with torch.autocast(images.device.type, enabled=False):
            out = self.network(images.float())
            if isinstance(out, tuple):
                return tuple(torch.sigmoid(f) for f in out)
            return torch.sigmoid(out)

    def target_features(self, target: torch.Tensor):
        return self.features(target)

    def unscaled(self, reconstruction, target, target_features=None) -> torch.Tensor:
        """`target_features`, where given, must be `features(target)`: they depend on the image
        alone, so training computes them once per image rather than once per epoch (see
        `feature_cache.FeatureCache`)."""
        if target_features is None:
            with torch.no_grad():
                target_features = self.features(target)
        targets = tuple(t.float() for t in _layers(target_features))
        chunk = self._chunk(reconstruction)
        if (
            not chunk
            or reconstruction.device.type != "cpu"
            or len(reconstruction) <= chunk
            or not torch.is_grad_enabled()
        ):
            mine = _layers(self.features(reconstruction))
            return sum(F.mse_loss(f, t) for f, t in zip(mine, targets))
        from torch.utils.checkpoint import checkpoint

        totals = [reconstruction.new_zeros((), dtype=torch.float32) for _ in targets]
        for start in range(0, len(reconstruction), chunk):
            r = reconstruction[start : start + chunk]
            features = _layers(checkpoint(self.features, r, use_reentrant=False))
            for layer, (f, t) in enumerate(zip(features, targets)):
                totals[layer] = totals[layer] + F.mse_loss(
                    f, t[start : start + chunk], reduction="sum"
                )
        return sum(total / t.numel() for total, t in zip(totals, targets))

    def forward(self, reconstruction, target, target_features=None) -> torch.Tensor:
        return self.scale * self.unscaled(reconstruction, target, target_features)

    def _chunk(self, images: torch.Tensor) -> int | None:
        if self.cpu_chunk != "auto":
            return self.cpu_chunk
        if images.device.type != "cpu":
            return None
        shape = tuple(images.shape[1:])
        if shape not in self._image_bytes:
            self._image_bytes[shape] = activation_bytes(self.network, images[:1])
        return max(1, CPU_ACTIVATION_BYTES // max(1, self._image_bytes[shape]))

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> float:
        """The rule of every loss (`ReconstructionLoss.calibrate`) over all pairs of the images,
        in closed form: for an MSE of features, the mean over pairs is twice the features'
        variance over the images, so the scale is the variance of the pixels over that of the
        sigmoid features (summed over layers), each taken per element and averaged over
        elements."""
        chunks = [_layers(self.features(chunk)) for chunk in images.split(128)]
        pixel_var = images.double().var(0, correction=0).mean().item()
        feature_var = sum(
            torch.cat([c[layer] for c in chunks]).double().var(0, correction=0).mean().item()
            for layer in range(len(chunks[0]))
        )
        return checked_scale(
            pixel_var, feature_var, f"{self.network_name or 'the network'}'s features"
        )
