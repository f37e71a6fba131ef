"""Autoencoder training: Adam, early stopping on validation loss with the best epoch
kept, per-epoch checkpoints so an interrupted run resumes exactly, and a run folder
(weights, configs as JSON, history as CSV).

Images stay uint8 until a batch is on the device; where the set fits it lives on the
device and batches are drawn by index there, and no step waits on the host.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import ConfigError, JsonConfig, atomic_write_json, atomic_write_text
from .data import ImageSet
from .loss import PerceptualLoss, kl_divergence
from .model import Autoencoder, save_autoencoder


@dataclass
class TrainConfig(JsonConfig):
    loss: str = "pixel"  # "pixel" or "perceptual"
    perceptual_net: str = "alexnet"
    perceptual_weights: str | None = None
    kl_weight: float = 0.01  # gamma; used by variational models only
    epochs: int = 50
    batch_size: int = 512
    lr: float = 1e-3
    patience: int | None = None  # None: max(10, epochs // 20), as the study
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA and on CPUs that multiply bf16 natively
    compile: bool = False  # torch.compile the training step on CUDA (see docs/performance.md)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")

    @property
    def effective_patience(self) -> int:
        return self.patience if self.patience is not None else max(10, self.epochs // 20)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return device


def to_float_batch(batch: torch.Tensor, tile: int = 1) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H*tile, W*tile) in [0, 1].

    The permute of NHWC memory is already channels-last, which convolutions prefer.
    """
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    if tile > 1:
        x = x.repeat(1, 1, tile, tile)
    return x


class DeviceImages:
    """An ImageSet made ready for a device: resident uint8 when it fits, else pinned
    host batches copied asynchronously."""

    def __init__(self, images: ImageSet, device: torch.device, max_resident_bytes: int | None = None):
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
            return to_float_batch(self.data[positions.to(self.device, non_blocking=True)], self.tile)
        host = torch.from_numpy(self.images.gather(positions.cpu().numpy()))
        if self.device.type == "cuda":
            host = host.pin_memory()
        return to_float_batch(host.to(self.device, non_blocking=True), self.tile)

    def batches(self, batch_size: int, order: torch.Tensor | None = None):
        order = torch.arange(self.n) if order is None else order
        if self.resident:
            order = order.to(self.device)  # one copy per epoch, not one per batch
        for start in range(0, self.n, batch_size):
            yield self.batch(order[start:start + batch_size])


def objective(model: Autoencoder, loss_fn: nn.Module, x: torch.Tensor, kl_weight: float, freeze_encoder: bool = False):
    if freeze_encoder:
        # Decoder retraining: reconstruct from the fixed embedding (mu), nothing else moves.
        with torch.no_grad():
            mu = model.encode(x)
        return loss_fn(model.decode(mu), x)
    out = model(x)
    loss = loss_fn(out.reconstruction, x)
    if out.logvar is not None:
        loss = loss + kl_weight * kl_divergence(out.mu.float(), out.logvar.float())
    return loss


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        rows = self.history[1:] or self.history  # the first epoch pays warm-up costs
        return float(np.mean([r["images_per_s"] for r in rows])) if rows else 0.0

    @property
    def seconds_per_epoch(self) -> float:
        rows = self.history[1:] or self.history
        return float(np.mean([r["seconds"] for r in rows])) if rows else 0.0


CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
RESULT = "train_result.json"


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


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp_enabled(device, enabled))


def train_autoencoder(
    model: Autoencoder,
    loss_fn: nn.Module,
    train_set: ImageSet,
    val_set: ImageSet,
    config: TrainConfig,
    run_dir: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    freeze_encoder: bool = False,
) -> TrainResult:
    """Train `model` in place on `loss_fn` (+ KL for a VAE); keep the best validation epoch.

    `freeze_encoder` optimises the decoder alone, from the encoder's mu (decoder retraining).
    With `run_dir`, a checkpoint is written after every epoch and picked up on restart,
    so that an interrupted run ends exactly as an uninterrupted one.
    """
    from tqdm.auto import tqdm

    config.validate()
    if model.config.image_size != train_set.image_size:
        raise ConfigError(
            f"the model takes {model.config.image_size}px images but the data has "
            f"{train_set.image_size}px; set the image size to {train_set.image_size}"
        )
    if len(train_set) < 2 or len(val_set) < 1:
        raise ConfigError(f"need at least 2 training and 1 validation image, got {len(train_set)} and {len(val_set)}")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model.to(device)
    loss_fn.to(device)
    # Channels-last convolutions: faster on CUDA and on CPU alike (CPU: x1.46 in float32).
    model.to(memory_format=torch.channels_last)
    loss_fn.to(memory_format=torch.channels_last)
    params = model.decoder_parameters() if freeze_encoder else list(model.parameters())
    if isinstance(loss_fn, PerceptualLoss):
        own = {id(p) for p in loss_fn.parameters()}
        assert not any(id(p) in own for p in params), "the perceptual network must never be optimised"
    optimizer = torch.optim.Adam(params, lr=config.lr, fused=device.type == "cuda")
    generator = torch.Generator().manual_seed(config.seed)
    train_data, val_data = DeviceImages(train_set, device), DeviceImages(val_set, device)
    kl_weight = config.kl_weight if model.variational and not freeze_encoder else 0.0
    step = torch.compile(objective) if config.compile and device.type == "cuda" else objective

    history: list[dict] = []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_val, best_epoch, bad_epochs, start_epoch = math.inf, 0, 0, 1
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and (run_dir / CHECKPOINT).exists():
        ck = torch.load(run_dir / CHECKPOINT, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        best_state = ck["best_state"]
        generator.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in ck:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        history = [dict(zip(ck["history_keys"], row)) for row in ck["history"].tolist()]
        for row in history:
            row["epoch"] = int(row["epoch"])
        best_val, best_epoch, bad_epochs = ck["best_val"], int(ck["best_epoch"]), int(ck["bad_epochs"])
        start_epoch = len(history) + 1
        if log:
            log(f"resuming from epoch {start_epoch} (checkpoint in {run_dir})")

    patience = config.effective_patience
    stopped = bad_epochs >= patience
    for epoch in range(start_epoch, config.epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        model.train()
        loss_fn.train()
        if freeze_encoder:
            model.encoder.eval()  # its BatchNorm statistics are part of the frozen encoder
        order = torch.randperm(train_data.n, generator=generator)
        if train_data.n % config.batch_size == 1:
            order = order[:-1]  # BatchNorm cannot train on a batch of one
        total = torch.zeros((), device=device)
        bar = tqdm(total=len(order), desc=f"epoch {epoch}", unit="img", leave=False, disable=not progress)
        for x in train_data.batches(config.batch_size, order):
            with _autocast(device, config.amp):
                loss = step(model, loss_fn, x, kl_weight, freeze_encoder)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().float() * len(x)
            bar.update(len(x))
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t0
        val_loss = evaluate_loss(model, loss_fn, val_data, config.batch_size, kl_weight, config.amp, freeze_encoder, step)
        train_loss = total.item() / len(order)
        seconds = time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "seconds": seconds,
            "images_per_s": len(order) / train_seconds,
        }
        history.append(row)
        if val_loss < best_val:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        stopped = bad_epochs >= patience
        if run_dir is not None:
            _save_checkpoint(run_dir, model, optimizer, best_state, generator, history, best_val, best_epoch, bad_epochs, device)
            _write_history(run_dir, history)
        if log:
            log(
                f"epoch {epoch:3d}/{config.epochs}  train {train_loss:.4g}  val {val_loss:.4g}  "
                f"{seconds:6.1f}s  {row['images_per_s']:7.0f} img/s" + ("  *" if best_epoch == epoch else "")
            )

    model.load_state_dict(best_state)
    model.eval()
    result = TrainResult(best_epoch, best_val, len(history), history, float(sum(r["seconds"] for r in history)))
    if run_dir is not None:
        save_autoencoder(model, run_dir)
        config.save(run_dir / "train_config.json")
        atomic_write_json(
            run_dir / RESULT,
            {
                "best_epoch": best_epoch,
                "best_val_loss": best_val,
                "epochs_run": len(history),
                "seconds": result.train_seconds,
                "images_per_s": result.images_per_second,
                "seconds_per_epoch": result.seconds_per_epoch,
                "device": str(device),
                "bf16_autocast": amp_enabled(device, config.amp),
            },
        )
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return result


@torch.no_grad()
def evaluate_loss(model, loss_fn, data: DeviceImages, batch_size: int, kl_weight: float = 0.0, amp: bool = True,
                  freeze_encoder: bool = False, step: Callable = objective) -> float:
    """Mean objective over a set, in eval mode and without autograd."""
    model.eval()
    total = torch.zeros((), device=data.device)
    for x in data.batches(batch_size):
        with _autocast(data.device, amp):
            total += step(model, loss_fn, x, kl_weight, freeze_encoder).float() * len(x)
    return total.item() / data.n


def _save_checkpoint(run_dir, model, optimizer, best_state, generator, history, best_val, best_epoch, bad_epochs, device):
    run_dir.mkdir(parents=True, exist_ok=True)
    keys = list(history[0].keys())
    ck = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "best_state": best_state,
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history_keys": keys,
        "history": torch.tensor([[r[k] for k in keys] for r in history], dtype=torch.float64),
        "best_val": best_val,
        "best_epoch": best_epoch,
        "bad_epochs": bad_epochs,
    }
    if device.type == "cuda":
        ck["cuda_rng"] = torch.cuda.get_rng_state(device)
    tmp = run_dir / f".{CHECKPOINT}.tmp"
    torch.save(ck, tmp)
    os.replace(tmp, run_dir / CHECKPOINT)


def _write_history(run_dir: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0].keys()))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / HISTORY, buf.getvalue())
