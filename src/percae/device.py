"""Where and how tensors are computed: the device, bf16 autocast where the hardware
multiplies bf16 natively, and uint8 images turned into float batches on the device
(`DeviceImages`: resident where they fit, pinned host batches otherwise)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .data import ImageSet, to_float_batch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"--device {name}: percae trains on cpu or cuda; use auto, cpu, cuda or cuda:N"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name} was asked for but no CUDA device is available; use --device cpu"
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise ConfigError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return device


def to_channels_last(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`module` on `device` with its convolutions channels-last (faster on CPU and CUDA), except
    on a CPU the weights of transposed convolutions: oneDNN reorders a channels-last transposed
    weight at every call, forward and backward (measured in docs/performance.md)."""
    module.to(device).to(memory_format=torch.channels_last)
    if device.type == "cpu":
        for layer in module.modules():
            if isinstance(layer, torch.nn.ConvTranspose2d):
                layer.weight.data = layer.weight.data.contiguous()
    return module


class DeviceImages:
    """An ImageSet made ready for a device: resident uint8 when it fits, else pinned
    host batches copied asynchronously."""

    def __init__(
        self, images: ImageSet, device: torch.device, max_resident_bytes: int | None = None
    ):
        self.images, self.device, self.tile = images, device, images.tile
        self.n = len(images)
        if max_resident_bytes is None:
            if device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(device)
                max_resident_bytes = free // 3
            else:
                # On the host, a memory-mapped set is read per batch rather than copied.
                max_resident_bytes = 0 if isinstance(images.images, np.memmap) else 1 << 62
        self.resident = images.nbytes <= max_resident_bytes
        self.data = None
        if self.resident:
            chunks = []
            for start in range(0, self.n, 16384):
                pos = np.arange(start, min(self.n, start + 16384))
                chunks.append(torch.from_numpy(images.gather(pos)).to(device))
            self.data = torch.cat(chunks) if len(chunks) != 1 else chunks[0]

    def batch(self, positions: torch.Tensor) -> torch.Tensor:
        if self.resident:
            return to_float_batch(
                self.data[positions.to(self.device, non_blocking=True)], self.tile
            )
        host = torch.from_numpy(self.images.gather(positions.cpu().numpy()))
        if self.device.type == "cuda":
            host = host.pin_memory()
        return to_float_batch(host.to(self.device, non_blocking=True), self.tile)

    def batches(self, batch_size: int, order: torch.Tensor | None = None):
        for _, x in self.indexed_batches(batch_size, order):
            yield x

    def indexed_batches(self, batch_size: int, order: torch.Tensor | None = None):
        """(positions, batch) pairs; the positions are on the device where the set is resident."""
        order = torch.arange(self.n) if order is None else order
        if self.resident:
            order = order.to(self.device)  # one copy per epoch, not one per batch
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            yield positions, self.batch(positions)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX). There bf16
    autocast doubles training speed (measured: docs/performance.md); elsewhere oneDNN
    emulates bf16 and it would be slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def amp_enabled(device: torch.device, amp: bool = True) -> bool:
    return amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()))


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp_enabled(device, enabled))
