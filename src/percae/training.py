"""Autoencoder training: Adam, early stopping on validation loss with the best epoch
kept, per-epoch checkpoints so an interrupted run resumes exactly, and a run folder
(weights, configs as JSON, history as CSV).

Images stay uint8 until a batch is on the device; where the set fits it lives on the
device and batches are drawn by index there, and no step waits on the host. On CUDA the
perceptual network's features of the target images are computed once per run, not per epoch.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import (
    MAX_SEED,
    REQUIRED,
    ConfigError,
    JsonConfig,
    atomic_write_bytes,
    atomic_write_text,
    early_stopping_patience,
    remove_stale_temporary_files,
    setting,
)
from .data import ImageSet
from .device import (
    DeviceImages,
    amp_enabled,
    autocast,
    resolve_device,
    to_channels_last,
    to_float_batch,
)
from .feature_cache import FeatureCache, feature_cache_bytes
from . import provenance
from .layout import RunFiles
from .loss import (
    AUTO_SCALE,
    CALIBRATION_IMAGES,
    LOSSES,
    ReconstructionLoss,
    build_loss,
    check_perceptual_scale,
    kl_divergence,
)
from .model import Autoencoder, non_finite_entries, save_autoencoder


# Per-epoch lines go to the "percae" logger unless a `log` callable is given; for metrics,
# `on_epoch`.
LOG = logging.getLogger(__name__)


@dataclass
class TrainConfig(JsonConfig):
    loss: str = setting("pixel", choices=tuple(LOSSES))
    # The network of the perceptual loss: NET, NET:LAYER, NET:LAYER+LAYER or torchvision:ARCH:LAYER.
    perceptual_net: str = "alexnet"
    perceptual_weights: str | None = None
    # The factor of every loss but pixel MSE: a number (1: the paper's loss), or "auto": the
    # ratio of pixel MSE to the loss between pairs of training images (ReconstructionLoss.
    # calibrate), which gives every loss the scale of pixel MSE (docs/results/perceptual-scale.md).
    perceptual_scale: float | str = "auto"
    # gamma, for variational models only: on the pixel (and calibrated) scale 1e-3 keeps every
    # latent dimension of both VAEs; the paper's 0.01 is the paper preset's.
    kl_weight: float = setting(1e-3, min=0)
    epochs: int = setting(50, min=1)
    batch_size: int = setting(512, min=2)
    lr: float = setting(1e-3, above=0)
    patience: int | None = setting(
        None, option="patience", min=1
    )  # None: max(10, epochs // 20), as the study
    seed: int = setting(0, min=0, max=MAX_SEED)
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA and on CPUs that multiply bf16 natively
    compile: bool = False  # torch.compile the training step on CUDA (see docs/performance.md)
    # Set by training: the fingerprint of its training and validation images (ImageSet.fingerprint),
    # saved with the run, so that a run resumes only on the images it began with.
    data_fingerprint: str | None = None
    # Perceptual loss: megabytes the target images' features may keep between epochs
    # (None: a quarter of the GPU's memory on CUDA, none on a CPU, see feature_cache_bytes;
    # 0: recompute them every batch).
    feature_cache_mb: float | None = setting(None, option="feature_cache_mb", min=0)

    def validate(self) -> None:
        super().validate()
        check_perceptual_scale(self.perceptual_scale)
        resolve_device(self.device)

    @property
    def effective_patience(self) -> int:
        return early_stopping_patience(self.epochs, self.patience)

    def build_loss(self) -> nn.Module:
        """The reconstruction loss these settings name (the one source of it)."""
        return build_loss(self.loss, self.perceptual_net, self.perceptual_weights)

    def resume_differences(self, saved: dict) -> list[str]:
        """The settings of a checkpoint's run (`saved`, as to_dict) that this config changes.
        Where the run computes is free to change; what it computes is not."""
        ignored = {"device", "compile", "feature_cache_mb"}
        if saved.get("loss") == self.loss and self.loss in LOSSES:
            # What the run's loss does not use.
            if not LOSSES[self.loss].uses_network:
                ignored |= {"perceptual_net", "perceptual_weights"}
            if not LOSSES[self.loss].scaled:
                ignored.add("perceptual_scale")
        mine = self.to_dict()
        return [
            k
            for k in mine
            if k not in ignored and k in saved and not _same_setting(k, saved[k], mine[k])
        ]


def objective(
    model: Autoencoder,
    loss_fn: nn.Module,
    x: torch.Tensor,
    kl_weight: float,
    freeze_encoder: bool = False,
    target_features: torch.Tensor | None = None,
):
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


def _same_setting(key: str, saved, mine) -> bool:
    # A calibrated scale computed again on another machine may differ in its last bits (the
    # resumed run then keeps the saved one); other data or another network moves it far more.
    if key == "perceptual_scale" and all(isinstance(v, (int, float)) for v in (saved, mine)):
        return math.isclose(saved, mine, rel_tol=1e-3)
    return saved == mine


def resolve_perceptual_scale(
    config: TrainConfig, loss_fn: ReconstructionLoss, images: ImageSet, device: torch.device
) -> float:
    """The scale a run's loss uses: the config's number, or for "auto" the calibration on a
    fixed, evenly spaced sample of the training images (the same for every seed)."""
    if config.perceptual_scale != AUTO_SCALE:
        return float(config.perceptual_scale)
    count = min(len(images), CALIBRATION_IMAGES)
    positions = np.unique(np.linspace(0, len(images) - 1, count).round().astype(np.int64))
    sample = to_float_batch(torch.from_numpy(images.gather(positions)), images.tile).to(device)
    return loss_fn.calibrate(sample)


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


@dataclass(kw_only=True)  # (its fields in the order of the file)
class TrainingRecord(JsonConfig):
    """train_result.json: how a finished training went (a VAE's latent diagnostics at its best
    epoch; the perceptual scale it used)."""

    named_by_option = False
    best_epoch: int = setting(REQUIRED, min=1)
    best_val_loss: float = setting(REQUIRED, min=0)
    # (Results of earlier versions may lack the settings that default to None.)
    epochs_run: int | None = setting(None, min=1)
    seconds: float | None = setting(None, min=0)
    images_per_s: float = setting(REQUIRED, above=0)
    seconds_per_epoch: float = setting(REQUIRED, above=0)
    device: str | None = None
    bf16_autocast: bool | None = None
    perceptual_scale: float | None = setting(None, above=0)
    provenance: dict | None = None
    val_reconstruction: float | None = setting(None, min=0)
    # (A collapsed VAE's KL may round to slightly below 0.)
    val_kl_term: float | None = None
    val_kl_per_dim: float | None = None
    active_units: int | None = setting(None, min=0)


@dataclass
class TrainState:
    """What a run needs to continue to the bit after an interruption (model, optimizer, batch
    order, random state, history, best weights, patience), saved after every epoch with the
    configs it belongs to, and loaded only under the same ones."""

    model: Autoencoder
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # the batch order
    history: list[dict] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one, for early stopping
    saved_config: dict = field(default_factory=dict)  # the resumed checkpoint's training config

    @classmethod
    def start(
        cls, model: Autoencoder, config: TrainConfig, device: torch.device, freeze_encoder: bool
    ) -> "TrainState":
        params = model.decoder_parameters() if freeze_encoder else list(model.parameters())
        # Fused: one kernel for all parameters (on a CPU 7.7 instead of 13 ms a step for this
        # model).
        optimizer = torch.optim.Adam(params, lr=config.lr, fused=device.type in ("cuda", "cpu"))
        return cls(
            model,
            optimizer,
            torch.Generator().manual_seed(config.seed),
            best_state=_copy(model.state_dict()),
        )

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def record(self, row: dict) -> None:
        """Add a finished epoch; keep its weights if its validation loss is the best yet."""
        self.history.append(row)
        if row["val_loss"] < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = row["val_loss"], row["epoch"], 0
            self.best_state = _copy(self.model.state_dict())
        else:
            self.bad_epochs += 1

    def save(
        self, files: RunFiles, config: TrainConfig, freeze_encoder: bool, device: torch.device
    ) -> None:
        keys = list(self.history[0].keys())
        checkpoint = {
            "train_config": config.to_dict(),
            "model_config": self.model.config.to_dict(),
            "freeze_encoder": freeze_encoder,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_state": self.best_state,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history_keys": keys,
            "history": torch.tensor(
                [[r[k] for k in keys] for r in self.history], dtype=torch.float64
            ),
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }
        if device.type == "cuda":
            checkpoint["cuda_rng"] = torch.cuda.get_rng_state(device)
        # Serialised first: torch.save into the file would report a full disk as "unexpected pos".
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(files.checkpoint, lambda f: f.write(buffer.getbuffer()))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(files.history, buf.getvalue())

    def load(
        self, files: RunFiles, config: TrainConfig, freeze_encoder: bool, device: torch.device
    ) -> None:
        """Continue from the checkpoint in `files`, which must have been written under the same
        settings; the global random state (a VAE's sampling) is restored too."""
        try:
            ck = torch.load(files.checkpoint, map_location=device, weights_only=True)
            if not isinstance(ck, dict) or "model" not in ck:
                raise TypeError("not a percae checkpoint")
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same clear message
            raise ConfigError(
                f"{files.checkpoint} cannot be read ({type(e).__name__}); delete it to start the "
                "run over"
            ) from None
        _check_resumable(ck, files.root, config, self.model, freeze_encoder)
        self.saved_config = ck.get("train_config", {})
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        match_state_layout(self.optimizer)
        self.best_state = ck["best_state"]
        self.generator.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in ck:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        self.history = [dict(zip(ck["history_keys"], row)) for row in ck["history"].tolist()]
        for row in self.history:  # the checkpoint keeps the history as float64: counts back to int
            for key in ("epoch", "active_units"):
                if key in row:
                    row[key] = int(row[key])
        self.best_val, self.best_epoch, self.bad_epochs = (
            ck["best_val"],
            int(ck["best_epoch"]),
            int(ck["bad_epochs"]),
        )


def train_autoencoder(
    model: Autoencoder,
    train_set: ImageSet,
    val_set: ImageSet,
    config: TrainConfig,
    run_dir: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = LOG.info,
    freeze_encoder: bool = False,
    loss_fn: nn.Module | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train `model` in place on the config's loss (+ KL for a VAE); keep the best validation epoch.

    `freeze_encoder` optimises the decoder alone, from the encoder's mu (decoder retraining).
    With `run_dir`, a checkpoint is written after every epoch and picked up on restart,
    so that an interrupted run ends exactly as an uninterrupted one. `loss_fn` replaces the
    loss the config names (for experiments with losses of one's own). `on_epoch(row)` is
    called after each epoch, once its checkpoint is saved, with the epoch's history row
    (losses, seconds, images/s, a VAE's diagnostics): a place to attach a logger.
    """
    config.validate()
    _check_sets(model, train_set, val_set)
    device = resolve_device(config.device)
    # Built before the seed: building a network draws from the global generator, which a VAE
    # then samples from (as when the caller built the loss).
    loss_fn = loss_fn if loss_fn is not None else config.build_loss()
    torch.manual_seed(config.seed)
    to_channels_last(model, device)
    to_channels_last(loss_fn, device)
    state = TrainState.start(model, config, device, freeze_encoder)
    config = replace(config, data_fingerprint=f"{train_set.fingerprint()}-{val_set.fingerprint()}")
    own = {id(p) for p in loss_fn.parameters()}
    assert not any(
        id(p) in own for group in state.optimizer.param_groups for p in group["params"]
    ), "the loss (a perceptual network) must never be optimised"
    scaled = getattr(loss_fn, "scaled", False)
    if scaled:
        # "auto" becomes the number used, saved with the run and compared on resume.
        config = replace(
            config, perceptual_scale=resolve_perceptual_scale(config, loss_fn, train_set, device)
        )
    files = RunFiles(run_dir) if run_dir is not None else None
    if files is not None:
        remove_stale_temporary_files(files.root)
    if files is not None and files.checkpoint.exists():
        state.load(files, config, freeze_encoder, device)
        if scaled and isinstance(state.saved_config.get("perceptual_scale"), (int, float)):
            config = replace(config, perceptual_scale=float(state.saved_config["perceptual_scale"]))
        if log:
            log(f"resuming from epoch {state.epochs_done + 1} (checkpoint in {files.root})")
    if scaled:
        loss_fn.scale = config.perceptual_scale
    train_data, val_data = DeviceImages(train_set, device), DeviceImages(val_set, device)
    epoch_run = _EpochRunner(
        model, loss_fn, train_data, val_data, config, device, freeze_encoder, progress
    )

    for epoch in range(state.epochs_done + 1, config.epochs + 1):
        if state.bad_epochs >= config.effective_patience:
            break
        row = epoch_run(epoch, state)
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])):
            _discard_unfinished(files)
            raise TrainingDiverged(
                f"{_run_label(model, files)}: training diverged at {row.pop('where')} (training "
                f"loss {row['train_loss']}, validation loss {row['val_loss']}); the last good "
                f"epoch is {state.epochs_done}; nothing was kept: lower the learning rate (--lr) "
                "or check the data"
            )
        row.pop("where")
        if model.variational and not freeze_encoder:
            row.update(latent_diagnostics(model, loss_fn, val_data, config.batch_size, config.amp))
        state.record(row)
        if files is not None:
            state.save(files, config, freeze_encoder, device)
        if log:
            log(
                f"epoch {epoch:3d}/{config.epochs}  train {row['train_loss']:.4g}  val "
                f"{row['val_loss']:.4g}  {row['seconds']:6.1f}s  {row['images_per_s']:7.0f} img/s"
                + ("  *" if state.best_epoch == epoch else "")
            )
        if on_epoch is not None:
            on_epoch(dict(row))
    return _finish(state, files, config, device)


def _check_sets(model: Autoencoder, train_set: ImageSet, val_set: ImageSet) -> None:
    if model.config.image_size != train_set.image_size:
        raise ConfigError(
            f"the model takes {model.config.image_size}px images but the data has "
            f"{train_set.image_size}px; set the image size to {train_set.image_size}"
        )
    if len(train_set) < 2 or len(val_set) < 1:
        raise ConfigError(
            f"need at least 2 training and 1 validation image, got {len(train_set)} and "
            f"{len(val_set)}"
        )


class _EpochRunner:
    """One epoch: a shuffled pass of training steps, then the validation loss; returns the
    epoch's history row (and, under "where", the first step whose loss was not finite)."""

    def __init__(
        self,
        model,
        loss_fn,
        train_data: DeviceImages,
        val_data: DeviceImages,
        config: TrainConfig,
        device: torch.device,
        freeze_encoder: bool,
        progress: bool,
    ):
        self.model, self.loss_fn, self.train_data, self.val_data = (
            model,
            loss_fn,
            train_data,
            val_data,
        )
        self.config, self.device, self.freeze_encoder, self.progress = (
            config,
            device,
            freeze_encoder,
            progress,
        )
        self.kl_weight = config.kl_weight if model.variational and not freeze_encoder else 0.0
        self.step = (
            torch.compile(objective) if config.compile and device.type == "cuda" else objective
        )
        self.train_cache = self.val_cache = None
        if getattr(loss_fn, "keeps_targets", False):
            self.budget = feature_cache_bytes(device, config.feature_cache_mb)
            self.train_cache, self.val_cache = (
                FeatureCache(train_data, self.budget),
                FeatureCache(val_data, self.budget),
            )

    def __call__(self, epoch: int, state: TrainState) -> dict:
        from tqdm.auto import tqdm

        config, model, device = self.config, self.model, self.device
        t0 = time.perf_counter()
        model.train()
        self.loss_fn.train()
        if self.freeze_encoder:
            model.encoder.eval()  # its BatchNorm statistics are part of the frozen encoder
        order = torch.randperm(self.train_data.n, generator=state.generator)
        if self.train_data.n % config.batch_size == 1:
            order = order[:-1]  # BatchNorm cannot train on a batch of one
        total = torch.zeros((), device=device)
        # Steps before the first one whose loss is not finite: counted on the device, so
        # that no step waits for the host to look at its loss.
        finite_so_far = torch.ones((), dtype=torch.bool, device=device)
        good_steps = torch.zeros((), dtype=torch.long, device=device)
        if self.train_cache is not None:
            # Inside the epoch's time: the first epoch pays for what the later ones save.
            self.train_cache.fill(self.loss_fn, config.batch_size, config.amp)
            # The training set's features are the ones reused most; validation's get what is left.
            self.val_cache.max_bytes = self.budget - self.train_cache.nbytes
            self.val_cache.fill(self.loss_fn, config.batch_size, config.amp)
        bar = tqdm(
            total=len(order),
            desc=f"epoch {epoch}",
            unit="img",
            leave=False,
            disable=not self.progress,
        )
        for positions, x in self.train_data.indexed_batches(config.batch_size, order):
            with autocast(device, config.amp):
                features = (
                    self.train_cache.features(positions) if self.train_cache is not None else None
                )
                loss = self.step(
                    model, self.loss_fn, x, self.kl_weight, self.freeze_encoder, features
                )
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            total += loss.detach().float() * len(x)
            finite_so_far &= torch.isfinite(loss.detach())
            good_steps += finite_so_far
            bar.update(len(x))
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t0
        val_loss = evaluate_loss(
            model,
            self.loss_fn,
            self.val_data,
            config.batch_size,
            self.kl_weight,
            config.amp,
            self.freeze_encoder,
            self.step,
            self.val_cache,
        )
        return {
            "epoch": epoch,
            "train_loss": total.item() / len(order),
            "val_loss": val_loss,
            "seconds": time.perf_counter() - t0,
            "images_per_s": len(order) / train_seconds,
            "where": (
                f"step {int(good_steps) + 1} of epoch {epoch}"
                if not bool(finite_so_far)
                else f"epoch {epoch} (in validation)"
            ),
        }


def _finish(
    state: TrainState, files: RunFiles | None, config: TrainConfig, device: torch.device
) -> TrainResult:
    """Put the best epoch's weights in the model and, with a run folder, save the run as
    finished."""
    model = state.model
    bad = non_finite_entries(state.best_state)
    if bad:
        _discard_unfinished(files)
        raise TrainingDiverged(
            f"{_run_label(model, files)}: training diverged: the best epoch's {', '.join(bad[:3])} "
            "hold NaN or inf values; nothing was kept: lower the learning rate (--lr) or check "
            "the data"
        )
    model.load_state_dict(state.best_state)
    model.eval()
    history = state.history
    result = TrainResult(
        state.best_epoch,
        state.best_val,
        len(history),
        history,
        float(sum(r["seconds"] for r in history)),
    )
    if files is not None:
        best_row = next((r for r in history if r["epoch"] == state.best_epoch), {})
        save_autoencoder(model, files.root)
        config.save(files.train_config)
        record = TrainingRecord(
            best_epoch=state.best_epoch,
            best_val_loss=state.best_val,
            epochs_run=len(history),
            seconds=result.train_seconds,
            images_per_s=result.images_per_second,
            seconds_per_epoch=result.seconds_per_epoch,
            device=str(device),
            bf16_autocast=amp_enabled(device, config.amp),
            perceptual_scale=config.perceptual_scale if LOSSES[config.loss].scaled else None,
            provenance=provenance.record(device),
            **{k: best_row[k] for k in LATENT_DIAGNOSTICS if k in best_row},
        )
        record.write_result(files.train_result)
        files.checkpoint.unlink(missing_ok=True)
    return result


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each of the optimizer's state tensors its parameter's memory layout. A checkpoint
    keeps the layout it was saved with (channels-last or not: another device, another percae),
    and fused Adam walks a parameter's memory and its state's in the same order, so a state in
    another layout would update each weight with another weight's moments."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if (
                    isinstance(value, torch.Tensor)
                    and value.shape == param.shape
                    and value.stride() != param.stride()
                ):
                    state[key] = torch.empty_like(param).copy_(value)


def _copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state_dict.items()}


@torch.no_grad()
def evaluate_loss(
    model,
    loss_fn,
    data: DeviceImages,
    batch_size: int,
    kl_weight: float = 0.0,
    amp: bool = True,
    freeze_encoder: bool = False,
    step: Callable = objective,
    cache: FeatureCache | None = None,
) -> float:
    """Mean objective over a set, in eval mode and without autograd."""
    model.eval()
    total = torch.zeros((), device=data.device)
    for positions, x in data.indexed_batches(batch_size):
        with autocast(data.device, amp):
            features = cache.features(positions) if cache is not None else None
            total += step(model, loss_fn, x, kl_weight, freeze_encoder, features).float() * len(x)
    return total.item() / data.n


# Burda et al. (2016): a latent dimension is active when its mean varies over the data.
ACTIVE_UNIT_VARIANCE = 0.01
LATENT_DIAGNOSTICS = ("val_reconstruction", "val_kl_term", "val_kl_per_dim", "active_units")


@torch.no_grad()
def latent_diagnostics(
    model, loss_fn, data: DeviceImages, batch_size: int, amp: bool = True
) -> dict:
    """A VAE's validation terms, to tell posterior collapse from learning: the reconstruction
    loss (decoding mu), the KL term as the objective weighs it (gamma not applied), the mean KL
    per latent dimension in nats, and the active units: dimensions whose mean (mu) has a
    variance over the set above ACTIVE_UNIT_VARIANCE."""
    model.eval()
    reconstruction = torch.zeros((), device=data.device)
    kl = torch.zeros(model.config.latent_dim, device=data.device)
    means = []
    for x in data.batches(batch_size):
        with autocast(data.device, amp):
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


def _discard_unfinished(files: RunFiles | None) -> None:
    """A diverged run keeps nothing: its checkpoint would resume the divergence, and it would
    block the corrected command (a checkpoint resumes only under its own settings)."""
    if files is None:
        return
    files.checkpoint.unlink(missing_ok=True)
    files.history.unlink(missing_ok=True)
    if files.root.is_dir() and not any(files.root.iterdir()):
        files.root.rmdir()


def _run_label(model: Autoencoder, files: RunFiles | None) -> str:
    label = f"{model.config.kind} z={model.config.latent_dim}"
    return f"{files.root} ({label})" if files is not None else label


def _check_resumable(
    ck: dict, run_dir: Path, config: TrainConfig, model: Autoencoder, freeze_encoder: bool
) -> None:
    """A checkpoint resumes only the run that wrote it: other settings would silently mix two
    runs."""
    saved_data = ck.get("train_config", {}).get("data_fingerprint")
    if saved_data is not None and saved_data != config.data_fingerprint:
        raise ConfigError(
            f"{run_dir} holds an interrupted run on other images (data fingerprint {saved_data} "
            f"there, {config.data_fingerprint} now): rerun it with its data (--data), or use "
            "another --out"
        )
    changed = config.resume_differences(ck.get("train_config", {}))
    saved_model = ck.get("model_config", {})
    changed += [
        k for k, v in model.config.to_dict().items() if k in saved_model and saved_model[k] != v
    ]
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
