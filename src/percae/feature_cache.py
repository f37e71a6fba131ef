"""The target images' features that a loss keeps (a perceptual network's), computed once."""

from __future__ import annotations

import torch

from .device import DeviceImages, autocast
from .loss import ReconstructionLoss


def _layers(features) -> tuple[torch.Tensor, ...]:
    return features if isinstance(features, tuple) else (features,)


class FeatureCache:
    """The loss's `target_features` of every image of a set (a frozen network's features, of
    one layer or several), computed once per run: the network and the images never change
    during a run, so each epoch would compute the same tensors again (one of the network's
    three passes in a training step, target forward, reconstruction forward and backward; one
    of its two in validation).

    `fill` computes them in a fixed order of batches, whatever the epoch, so that a resumed
    run gets the same features, to the bit, as an uninterrupted one. Where the whole set's
    features do not fit in `max_bytes`, nothing is kept and each batch computes its own.
    """

    def __init__(self, data: DeviceImages, max_bytes: int):
        self.data, self.max_bytes = data, max_bytes
        self.store: tuple[torch.Tensor, ...] | None = None
        self.single = True
        self.tried = False

    def fill(self, loss_fn: ReconstructionLoss, batch_size: int, amp: bool) -> None:
        if (
            self.tried
            or self.max_bytes <= 0
            or (self.data.device.type == "cuda" and not self.data.resident)
        ):
            return  # (images too large for the device: their features, larger still, would not fit)
        self.tried = True  # once: a set found too large costs one batch, once per run
        for positions, x in self.data.indexed_batches(batch_size):
            with torch.no_grad(), autocast(self.data.device, amp):
                out = loss_fn.target_features(x)
            layers = _layers(out)
            if self.store is None:
                self.single = not isinstance(out, tuple)
                per_image = sum(f[:1].numel() * f.element_size() for f in layers)
                if per_image * self.data.n > self.max_bytes:
                    return
                try:
                    self.store = tuple(
                        torch.empty(
                            (self.data.n, *f.shape[1:]),
                            dtype=f.dtype,
                            device=f.device,
                            memory_format=torch.channels_last
                            if f.dim() == 4
                            else torch.contiguous_format,
                        )
                        for f in layers
                    )
                except torch.cuda.OutOfMemoryError:
                    # a budget set larger than the memory free: recompute, as without a cache
                    return
            for store, f in zip(self.store, layers):
                store[positions.to(f.device)] = f

    def features(self, positions: torch.Tensor):
        if self.store is None:
            return None
        out = tuple(s[positions.to(s.device)] for s in self.store)
        return out[0] if self.single else out

    @property
    def nbytes(self) -> int:
        return 0 if self.store is None else sum(s.numel() * s.element_size() for s in self.store)


def feature_cache_bytes(device: torch.device, megabytes: float | None) -> int:
    """Bytes a run's feature caches may take: `megabytes` if set (a Ray task on a share of a GPU
    sets its quarter of that share); else on CUDA a quarter of the device's memory (its total,
    not what is free now, so that a resumed run makes the same choice as the run it resumes:
    cached and recomputed features may differ in the last bits), and nothing on a CPU, where
    the speed it gained was within noise for memory a study's budget could not spare
    (docs/performance.md)."""
    if megabytes is not None:
        return int(megabytes * (1 << 20))
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory) // 4
    return 0


def shared_gpu_megabytes(share: float, device: torch.device) -> float:
    """The cache budget of a process that has `share` of a GPU (a Ray task with --gpus-per-run
    0.25): a quarter of its share, so that four trainings on one GPU do not each take a quarter
    of it."""
    return torch.cuda.get_device_properties(device).total_memory * share / 4 / (1 << 20)
