"""Autoencoder training: Adam, early stopping on validation loss with the best epoch
kept, per-epoch checkpoints so an interrupted run resumes exactly, and a run folder
(weights, configs as JSON, history as CSV).

Images stay uint8 until a batch is on the device; where the set fits it lives on the
device and batches are drawn by index there, and no step waits on the host. On CUDA the
perceptual network's features of the target images are computed once per run, not per epoch.
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
from .model import Autoencoder, non_finite_entries, save_autoencoder


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
    # Perceptual loss: megabytes the target images' features may keep between epochs
    # (None: a quarter of the GPU's memory on CUDA, none on a CPU, see feature_cache_bytes;
    # 0: recompute them every batch).
    feature_cache_mb: float | None = None

    def validate(self) -> None:
        self.check_types()
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.kl_weight) and self.kl_weight >= 0):
            raise ConfigError(f"--kl-weight must be a finite number, 0 or more, got {self.kl_weight}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be 0 or more, got {self.seed}")
        if self.loss not in ("pixel", "perceptual"):
            raise ConfigError(f"--loss must be pixel or perceptual, got {self.loss!r}")
        resolve_device(self.device)
        if self.feature_cache_mb is not None and self.feature_cache_mb < 0:
            raise ConfigError(f"feature_cache_mb must be 0 (off), positive, or None (automatic), got {self.feature_cache_mb}")

    @property
    def effective_patience(self) -> int:
        return self.patience if self.patience is not None else max(10, self.epochs // 20)

    def resume_differences(self, saved: dict) -> list[str]:
        """The settings of a checkpoint's run (`saved`, as to_dict) that this config changes.
        Where the run computes is free to change; what it computes is not."""
        ignored = {"device", "compile", "feature_cache_mb"}
        if self.loss == "pixel" and saved.get("loss") == "pixel":
            ignored |= {"perceptual_net", "perceptual_weights"}  # unused by a pixel-wise run
        mine = self.to_dict()
        return [k for k in mine if k not in ignored and k in saved and saved[k] != mine[k]]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for but no CUDA device is available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
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
        for _, x in self.indexed_batches(batch_size, order):
            yield x

    def indexed_batches(self, batch_size: int, order: torch.Tensor | None = None):
        """(positions, batch) pairs; the positions are on the device where the set is resident."""
        order = torch.arange(self.n) if order is None else order
        if self.resident:
            order = order.to(self.device)  # one copy per epoch, not one per batch
        for start in range(0, len(order), batch_size):
            positions = order[start:start + batch_size]
            yield positions, self.batch(positions)


class FeatureCache:
    """The frozen perceptual network's features of every image of a set, computed once per
    run: the network and the images never change during a run, so each epoch would compute
    the same tensor again (one of the network's three passes in a training step, target
    forward, reconstruction forward and backward; one of its two in validation).

    `fill` computes them in a fixed order of batches, whatever the epoch, so that a resumed
    run gets the same features, to the bit, as an uninterrupted one. Where the whole set's
    features do not fit in `max_bytes`, nothing is kept and each batch computes its own.
    """

    def __init__(self, data: DeviceImages, max_bytes: int):
        self.data, self.max_bytes = data, max_bytes
        self.store: torch.Tensor | None = None
        self.tried = False

    def fill(self, loss_fn: PerceptualLoss, batch_size: int, amp: bool) -> None:
        if self.tried or self.max_bytes <= 0 or (self.data.device.type == "cuda" and not self.data.resident):
            return  # (images too large for the device: their features, larger still, would not fit)
        self.tried = True  # once: a set found too large costs one batch, once per run
        for positions, x in self.data.indexed_batches(batch_size):
            with torch.no_grad(), _autocast(self.data.device, amp):
                f = loss_fn.features(x)
            if self.store is None:
                if f[:1].numel() * f.element_size() * self.data.n > self.max_bytes:
                    return
                layout = torch.channels_last if f.dim() == 4 else torch.contiguous_format
                try:
                    self.store = torch.empty((self.data.n, *f.shape[1:]), dtype=f.dtype, device=f.device,
                                             memory_format=layout)
                except torch.cuda.OutOfMemoryError:
                    return  # a budget set larger than the memory free: recompute, as without a cache
            self.store[positions.to(f.device)] = f

    def features(self, positions: torch.Tensor) -> torch.Tensor | None:
        return None if self.store is None else self.store[positions.to(self.store.device)]

    @property
    def nbytes(self) -> int:
        return 0 if self.store is None else self.store.numel() * self.store.element_size()


def feature_cache_bytes(device: torch.device, megabytes: float | None) -> int:
    """Bytes a run's feature caches may take: `megabytes` if set; else on CUDA a quarter of
    the device's memory (its total, not what is free now, so that a resumed run makes the
    same choice as the run it resumes: cached and recomputed features may differ in the
    last bits), and nothing on a CPU. There it was measured at -1 to +6% images/s for
    +200 MB at the peak of `percae reproduce stl10 --preset quick`, 20 MB short of that
    study's host memory budget (EfficientNet-Lite0's features of a 96 px image take 4 times
    its bytes): not worth it by default (docs/performance.md)."""
    if megabytes is not None:
        return int(megabytes * (1 << 20))
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory // 4
    return 0


def objective(model: Autoencoder, loss_fn: nn.Module, x: torch.Tensor, kl_weight: float, freeze_encoder: bool = False,
              target_features: torch.Tensor | None = None):
    """The training loss of one batch; `target_features` (perceptual loss only) are the
    network's features of `x` if they were computed before."""
    def reconstruction_loss(reconstruction):
        if target_features is None:
            return loss_fn(reconstruction, x)
        return loss_fn(reconstruction, x, target_features)

    if freeze_encoder:
        # Decoder retraining: reconstruct from the fixed embedding (mu), nothing else moves.
        with torch.no_grad():
            mu = model.encode(x)
        return reconstruction_loss(model.decode(mu))
    out = model(x)
    loss = reconstruction_loss(out.reconstruction)
    if out.logvar is not None:
        loss = loss + kl_weight * kl_divergence(out.mu.float(), out.logvar.float())
    return loss


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; nothing is saved as a finished run."""


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
    # Fused: one kernel for all parameters (on a CPU 7.7 instead of 13 ms a step for this model).
    optimizer = torch.optim.Adam(params, lr=config.lr, fused=device.type in ("cuda", "cpu"))
    generator = torch.Generator().manual_seed(config.seed)
    train_data, val_data = DeviceImages(train_set, device), DeviceImages(val_set, device)
    kl_weight = config.kl_weight if model.variational and not freeze_encoder else 0.0
    step = torch.compile(objective) if config.compile and device.type == "cuda" else objective
    train_cache = val_cache = None
    if isinstance(loss_fn, PerceptualLoss):
        budget = feature_cache_bytes(device, config.feature_cache_mb)
        train_cache, val_cache = FeatureCache(train_data, budget), FeatureCache(val_data, budget)

    history: list[dict] = []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_val, best_epoch, bad_epochs, start_epoch = math.inf, 0, 0, 1
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and (run_dir / CHECKPOINT).exists():
        ck = _load_checkpoint(run_dir, device)
        _check_resumable(ck, run_dir, config, model, freeze_encoder)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        best_state = ck["best_state"]
        generator.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in ck:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        history = [dict(zip(ck["history_keys"], row)) for row in ck["history"].tolist()]
        for row in history:  # the checkpoint keeps the history as float64: counts back to int
            for key in ("epoch", "active_units"):
                if key in row:
                    row[key] = int(row[key])
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
        # Steps before the first one whose loss is not finite: counted on the device, so
        # that no step waits for the host to look at its loss.
        finite_so_far = torch.ones((), dtype=torch.bool, device=device)
        good_steps = torch.zeros((), dtype=torch.long, device=device)
        if train_cache is not None:
            # Inside the epoch's time: the first epoch pays for what the later ones save.
            train_cache.fill(loss_fn, config.batch_size, config.amp)
            # The training set's features are the ones reused most; validation's get what is left.
            val_cache.max_bytes = budget - train_cache.nbytes
            val_cache.fill(loss_fn, config.batch_size, config.amp)
        bar = tqdm(total=len(order), desc=f"epoch {epoch}", unit="img", leave=False, disable=not progress)
        for positions, x in train_data.indexed_batches(config.batch_size, order):
            with _autocast(device, config.amp):
                features = train_cache.features(positions) if train_cache is not None else None
                loss = step(model, loss_fn, x, kl_weight, freeze_encoder, features)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().float() * len(x)
            finite_so_far &= torch.isfinite(loss.detach())
            good_steps += finite_so_far
            bar.update(len(x))
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t0
        val_loss = evaluate_loss(model, loss_fn, val_data, config.batch_size, kl_weight, config.amp, freeze_encoder, step,
                                 val_cache)
        train_loss = total.item() / len(order)
        seconds = time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "seconds": seconds,
            "images_per_s": len(order) / train_seconds,
        }
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            _discard_unfinished(run_dir)
            where = (f"step {int(good_steps) + 1} of epoch {epoch}" if not bool(finite_so_far)
                     else f"epoch {epoch} (in validation)")
            raise TrainingDiverged(
                f"{_run_label(model, run_dir)}: training diverged at {where} (training loss {train_loss}, validation "
                f"loss {val_loss}); the last good epoch is {len(history)}; nothing was kept: lower --lr or check the data"
            )
        if model.variational and not freeze_encoder:
            row.update(latent_diagnostics(model, loss_fn, val_data, config.batch_size, config.amp))
        history.append(row)
        if val_loss < best_val:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        stopped = bad_epochs >= patience
        if run_dir is not None:
            _save_checkpoint(run_dir, model, optimizer, best_state, generator, history, best_val, best_epoch, bad_epochs,
                             device, config, freeze_encoder)
            _write_history(run_dir, history)
        if log:
            log(
                f"epoch {epoch:3d}/{config.epochs}  train {train_loss:.4g}  val {val_loss:.4g}  "
                f"{seconds:6.1f}s  {row['images_per_s']:7.0f} img/s" + ("  *" if best_epoch == epoch else "")
            )

    bad = non_finite_entries(best_state)
    if bad:
        _discard_unfinished(run_dir)
        raise TrainingDiverged(f"{_run_label(model, run_dir)}: training diverged: the best epoch's {', '.join(bad[:3])} "
                               "hold NaN or inf values; nothing was kept: lower --lr or check the data")
    model.load_state_dict(best_state)
    model.eval()
    result = TrainResult(best_epoch, best_val, len(history), history, float(sum(r["seconds"] for r in history)))
    best_row = next((r for r in history if r["epoch"] == best_epoch), {})
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
                **{k: best_row[k] for k in LATENT_DIAGNOSTICS if k in best_row},
            },
        )
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return result


@torch.no_grad()
def evaluate_loss(model, loss_fn, data: DeviceImages, batch_size: int, kl_weight: float = 0.0, amp: bool = True,
                  freeze_encoder: bool = False, step: Callable = objective, cache: FeatureCache | None = None) -> float:
    """Mean objective over a set, in eval mode and without autograd."""
    model.eval()
    total = torch.zeros((), device=data.device)
    for positions, x in data.indexed_batches(batch_size):
        with _autocast(data.device, amp):
            features = cache.features(positions) if cache is not None else None
            total += step(model, loss_fn, x, kl_weight, freeze_encoder, features).float() * len(x)
    return total.item() / data.n


# Burda et al. (2016): a latent dimension is active when its mean varies over the data.
ACTIVE_UNIT_VARIANCE = 0.01
LATENT_DIAGNOSTICS = ("val_reconstruction", "val_kl_term", "val_kl_per_dim", "active_units")


@torch.no_grad()
def latent_diagnostics(model, loss_fn, data: DeviceImages, batch_size: int, amp: bool = True) -> dict:
    """A VAE's validation terms, to tell posterior collapse from learning: the reconstruction
    loss (decoding mu), the KL term as the objective weighs it (gamma not applied), the mean KL
    per latent dimension in nats, and the active units: dimensions whose mean (mu) has a
    variance over the set above ACTIVE_UNIT_VARIANCE."""
    model.eval()
    reconstruction = torch.zeros((), device=data.device)
    kl = torch.zeros(model.config.latent_dim, device=data.device)
    means = []
    for x in data.batches(batch_size):
        with _autocast(data.device, amp):
            out = model(x)
            reconstruction += loss_fn(out.reconstruction, x).float() * len(x)
        mu, logvar = out.mu.float(), out.logvar.float()
        kl += (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(0)
        means.append(mu)
    kl_per_dim = kl / data.n
    active = torch.cat(means).var(0, correction=0) > ACTIVE_UNIT_VARIANCE
    return {
        "val_reconstruction": reconstruction.item() / data.n,
        "val_kl_term": 2 * kl_per_dim.mean().item(),  # = kl_divergence(mu, logvar) over the set
        "val_kl_per_dim": kl_per_dim.mean().item(),
        "active_units": int(active.sum()),
    }


def _discard_unfinished(run_dir: Path | None) -> None:
    """A diverged run keeps nothing: its checkpoint would resume the divergence, and it would
    block the corrected command (a checkpoint resumes only under its own settings)."""
    if run_dir is None:
        return
    for name in (CHECKPOINT, HISTORY):
        (run_dir / name).unlink(missing_ok=True)
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _run_label(model: Autoencoder, run_dir: Path | None) -> str:
    label = f"{model.config.kind} z={model.config.latent_dim}"
    return f"{run_dir} ({label})" if run_dir is not None else label


def _load_checkpoint(run_dir: Path, device: torch.device) -> dict:
    try:
        ck = torch.load(run_dir / CHECKPOINT, map_location=device, weights_only=True)
        if not isinstance(ck, dict) or "model" not in ck:
            raise TypeError("not a percae checkpoint")
        return ck
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same clear message
        raise ConfigError(f"{run_dir / CHECKPOINT} cannot be read ({type(e).__name__}); delete it to start the run "
                          "over") from None


def _check_resumable(ck: dict, run_dir: Path, config: TrainConfig, model: Autoencoder, freeze_encoder: bool) -> None:
    """A checkpoint resumes only the run that wrote it: other settings would silently mix two runs."""
    changed = config.resume_differences(ck.get("train_config", {}))
    saved_model = ck.get("model_config", {})
    changed += [k for k, v in model.config.to_dict().items() if k in saved_model and saved_model[k] != v]
    if "freeze_encoder" in ck and bool(ck["freeze_encoder"]) != freeze_encoder:
        changed.append("freeze_encoder")
    if changed:
        was = {**ck.get("train_config", {}), **saved_model}
        now = {**config.to_dict(), **model.config.to_dict()}
        raise ConfigError(
            f"{run_dir} holds an interrupted run with other settings "
            f"({', '.join(f'{k}: {was.get(k)!r} there, {now.get(k)!r} now' for k in changed)}); "
            "rerun with its settings to resume it, or use another --out"
        )


def _save_checkpoint(run_dir, model, optimizer, best_state, generator, history, best_val, best_epoch, bad_epochs, device,
                     config: TrainConfig, freeze_encoder: bool):
    run_dir.mkdir(parents=True, exist_ok=True)
    keys = list(history[0].keys())
    ck = {
        "train_config": config.to_dict(),
        "model_config": model.config.to_dict(),
        "freeze_encoder": freeze_encoder,
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
