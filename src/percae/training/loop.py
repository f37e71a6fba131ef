"""`train_autoencoder`: the loop, an epoch at a time, with its checkpoint after every epoch and
the finished run saved at the end."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .. import provenance
from ..config import ConfigError
from ..data import ImageSet
from ..device import DeviceImages, amp_enabled, resolve_device, to_channels_last
from ..feature_cache import FeatureCache, feature_cache_bytes
from ..files import remove_stale_temporary_files
from ..progress import progress_bar
from ..layout import RunFiles
from ..loss import ReconstructionLoss
from ..model import Autoencoder, non_finite_entries, save_autoencoder
from .config import TrainConfig
from .records import TrainingDiverged, TrainingRecord
from .state import TrainState
from .steps import (
    Objective,
    evaluate_loss,
    latent_diagnostics,
    objective,
    resolve_perceptual_scale,
    train_pass,
)

# Per-epoch lines go to the "percae" logger unless a `log` callable is given; for metrics,
# `on_epoch`.
LOG = logging.getLogger(__name__)


def train_autoencoder(
    model: Autoencoder,
    train_set: ImageSet,
    val_set: ImageSet,
    config: TrainConfig,
    run_dir: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = LOG.info,
    freeze_encoder: bool = False,
    loss_fn: ReconstructionLoss | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainingRecord:
    """Train `model` in place on the config's loss (+ KL for a VAE); keep the best validation
    epoch, and return how it went (the record that train_result.json holds, with its history).

    `freeze_encoder` optimises the decoder alone, from the encoder's mu (decoder retraining).
    With `run_dir`, a checkpoint is written after every epoch and picked up on restart, so
    that an interrupted run ends exactly as an uninterrupted one. `loss_fn` replaces the loss
    the config names (for experiments with losses of one's own). `on_epoch(row)` is called
    after each epoch, once its checkpoint is saved, with the epoch's history row (losses,
    seconds, images/s, a VAE's diagnostics): a place to attach a logger.
    """
    run = _Run.begin(model, train_set, val_set, config, run_dir, freeze_encoder, loss_fn, log)
    config, state = run.config, run.state
    for epoch in range(state.epochs_done + 1, config.epochs + 1):
        if state.bad_epochs >= config.effective_patience:
            break
        t0 = time.perf_counter()
        model.train()
        run.objective.loss_fn.train()
        if freeze_encoder:
            model.encoder.eval()  # its BatchNorm statistics are part of the frozen encoder
        run.fill_caches()  # inside the epoch's time: the first epoch pays for what later ones save
        with progress_bar(
            desc=f"epoch {epoch}", unit="img", leave=False, disable=not progress
        ) as bar:
            bar.total = run.train.n - (run.train.n % config.batch_size == 1)
            train_loss, images, bad_step = train_pass(
                run.objective, run.train, state, config, run.train_cache, bar
            )
        seconds = time.perf_counter() - t0  # the cache's fill included
        val_loss = evaluate_loss(
            run.objective, run.val, config.batch_size, config.amp, run.val_cache
        )
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "seconds": time.perf_counter() - t0,
            "images_per_s": images / seconds,
        }
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            where = (
                f"step {bad_step} of epoch {epoch}"
                if bad_step
                else f"epoch {epoch} (in validation)"
            )
            run.diverged(
                f"training diverged at {where} (training loss {train_loss}, validation loss "
                f"{val_loss}); the last good epoch is {state.epochs_done}"
            )
        if model.variational and not freeze_encoder:
            row.update(
                latent_diagnostics(
                    model, run.objective.loss_fn, run.val, config.batch_size, config.amp
                )
            )
        state.record(row)
        if run.files is not None:
            state.save(run.files, config, freeze_encoder, run.device)
        if log:
            log(
                f"epoch {epoch:3d}/{config.epochs}  train {train_loss:.4g}  val {val_loss:.4g}  "
                f"{row['seconds']:6.1f}s  {row['images_per_s']:7.0f} img/s"
                + ("  *" if state.best_epoch == epoch else "")
            )
        if on_epoch is not None:
            on_epoch(dict(row))
    return run.finish()


@dataclass
class _Run:
    """A training under way: its settings (the loss's scale resolved), state, objective, data
    on the device, the loss's kept targets, and its folder."""

    config: TrainConfig
    state: TrainState
    objective: Objective
    train: DeviceImages
    val: DeviceImages
    device: torch.device
    files: RunFiles | None
    train_cache: FeatureCache | None = None
    val_cache: FeatureCache | None = None
    budget: int = 0

    @classmethod
    def begin(
        cls, model, train_set, val_set, config, run_dir, freeze_encoder, loss_fn, log
    ) -> "_Run":
        """Check the settings and the sets, build the loss, start (or resume) the state."""
        config.validate()
        _check_sets(model, train_set, val_set)
        device = resolve_device(config.device)
        # Built before the seed: building a network draws from the global generator, which a VAE
        # then samples from (as when the caller built the loss).
        if loss_fn is None:
            loss_fn = config.build_loss()
        else:  # the run records the loss it trains with, by its name
            name = getattr(loss_fn, "name", None)
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"the loss given ({type(loss_fn).__name__}) has no name for the run's records: "
                    "give it a `name` attribute (train_config.json records it as the loss)"
                )
            config = replace(config, loss=name)
            if getattr(loss_fn, "uses_network", False):
                network = getattr(loss_fn, "network_name", "") or "a network of one's own"
                config = replace(config, perceptual_net=network)
        torch.manual_seed(config.seed)
        to_channels_last(model, device)
        to_channels_last(loss_fn, device)
        state = TrainState.start(model, config, device, freeze_encoder)
        config = replace(
            config, data_fingerprint=f"{train_set.fingerprint()}-{val_set.fingerprint()}"
        )
        own = {id(p) for p in loss_fn.parameters()}
        assert not any(
            id(p) in own for group in state.optimizer.param_groups for p in group["params"]
        ), "the loss (a perceptual network) must never be optimised"
        scaled = getattr(loss_fn, "scaled", False)
        if scaled:
            # "auto" becomes the number used, saved with the run and compared on resume.
            scale = resolve_perceptual_scale(config, loss_fn, train_set, device)
            config = replace(config, perceptual_scale=scale)
        files = RunFiles(run_dir) if run_dir is not None else None
        if files is not None:
            remove_stale_temporary_files(files.root)
        if files is not None and files.checkpoint.exists():
            state.load(files, config, freeze_encoder, device)
            saved_scale = state.saved_config.get("perceptual_scale")
            if scaled and isinstance(saved_scale, (int, float)):
                config = replace(config, perceptual_scale=float(saved_scale))
            if log:
                log(f"resuming from epoch {state.epochs_done + 1} (checkpoint in {files.root})")
        if scaled:
            loss_fn.scale = config.perceptual_scale
        kl_weight = config.kl_weight if model.variational and not freeze_encoder else 0.0
        step = torch.compile(objective) if config.compile else objective
        run = cls(
            config,
            state,
            Objective(model, loss_fn, kl_weight, freeze_encoder, step),
            DeviceImages(train_set, device),
            DeviceImages(val_set, device),
            device,
            files,
        )
        if getattr(loss_fn, "keeps_targets", False):
            run.budget = feature_cache_bytes(device, config.feature_cache_mb)
            run.train_cache = FeatureCache(run.train, run.budget)
            run.val_cache = FeatureCache(run.val, run.budget)
        return run

    def fill_caches(self) -> None:
        if self.train_cache is None:
            return
        loss_fn, batch, amp = self.objective.loss_fn, self.config.batch_size, self.config.amp
        self.train_cache.fill(loss_fn, batch, amp)
        # The training set's features are the ones reused most; validation's get what is left.
        self.val_cache.max_bytes = self.budget - self.train_cache.nbytes
        self.val_cache.fill(loss_fn, batch, amp)

    def diverged(self, what: str):
        """Refuse the run, keeping nothing: its checkpoint would resume the divergence, and it
        would block the corrected command (a checkpoint resumes only under its own settings)."""
        model = self.objective.model
        label = f"{model.config.kind} z={model.config.latent_dim}"
        if self.files is not None:
            self.files.checkpoint.unlink(missing_ok=True)
            self.files.history.unlink(missing_ok=True)
            if self.files.root.is_dir() and not any(self.files.root.iterdir()):
                self.files.root.rmdir()
            label = f"{self.files.root} ({label})"
        raise TrainingDiverged(
            f"{label}: {what}; nothing was kept: lower the learning rate (--lr) or check the data"
        )

    def finish(self) -> TrainingRecord:
        """Put the best epoch's weights in the model and, with a run folder, save the run as
        finished (train_result.json last)."""
        state, config, model = self.state, self.config, self.objective.model
        bad = non_finite_entries(state.best_state)
        if bad:
            self.diverged(
                f"training diverged: the best epoch's {', '.join(bad[:3])} hold NaN or inf values"
            )
        model.load_state_dict(state.best_state)
        model.eval()
        record = TrainingRecord.of(
            state.history,
            state.best_epoch,
            state.best_val,
            device=str(self.device),
            bf16_autocast=amp_enabled(self.device, config.amp),
            perceptual_scale=config.perceptual_scale
            if getattr(self.objective.loss_fn, "scaled", False)
            else None,
            provenance=provenance.record(self.device),
        )
        if self.files is not None:
            save_autoencoder(model, self.files.root)
            config.save(self.files.train_config)
            record.write_result(self.files.train_result)
            self.files.checkpoint.unlink(missing_ok=True)
        return record


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
