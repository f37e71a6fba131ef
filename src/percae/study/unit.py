"""One unit of a study, (model, latent size, training seed): train the autoencoder, embed,
fit the predictor grid, retrain the decoder; each step skipped where its file shows it
finished."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import ConfigError, JsonConfig, REQUIRED, setting
from ..files import atomic_write_bytes, remove_stale_temporary_files
from ..embeddings import cached_embeddings, reconstruct, reconstruction_l1
from ..model import build_autoencoder, load_autoencoder
from ..layout import RunFiles, StudyFiles, run_name
from ..predictors import fit_predictors
from ..training import train_autoencoder
from .config import StudyConfig
from .data import StudyParts


# A study's per-epoch hook: (unit, phase "train" or "retrain", the epoch's history row).
EpochHook = Callable[["Unit", str, dict], None]


@dataclass
class RetrainRecord(JsonConfig):
    """retrain.json: the test images' mean L1 reconstruction error as trained and after the
    decoder's retraining with pixel loss (the same, with 0 epochs, where there is none)."""

    named_by_option = False
    l1_before: float = setting(REQUIRED, above=0)
    l1_after: float = setting(REQUIRED, above=0)
    epochs_run: int = setting(REQUIRED, min=0)
    best_epoch: int = setting(REQUIRED, min=0)


@dataclass(frozen=True)
class Unit:
    """One independent piece of a study: train, embed, fit the grid, retrain, for one
    (model, latent size, training seed)."""

    model: str
    z: int
    seed: int

    @property
    def name(self) -> str:
        """Its run folder's name (runs/NAME)."""
        return run_name(self.model, self.z, self.seed)


def units(config: StudyConfig) -> list[Unit]:
    """Every unit of a study, in the order they run: by seed, then z, then model."""
    return [
        Unit(model, z, seed)
        for seed in config.training_seeds()
        for z in config.z_sizes
        for model in config.models
    ]


def pending_units(config: StudyConfig, files: StudyFiles) -> list[Unit]:
    """The units of a study not finished yet (a unit is finished when its retrain.json is)."""
    return [u for u in units(config) if not files.run(u).retrain_result.exists()]


@dataclass
class UnitWork:
    """What every unit of a study shares (its settings and data) and where they report: the
    study's folder, its log and per-epoch hook. `work(unit)` runs a unit in the study's folder;
    an executor elsewhere (a Ray worker) passes a folder, a log and a hook of its own."""

    config: StudyConfig
    parts: StudyParts
    files: StudyFiles | None = None
    progress: bool = True
    log: Callable[[str], None] = print
    on_epoch: EpochHook | None = None

    def __call__(self, unit: Unit, run: RunFiles | None = None, log=None, on_epoch=None) -> None:
        hook = on_epoch or (
            (lambda phase, row: self.on_epoch(unit, phase, row)) if self.on_epoch else None
        )
        run_one(self, unit, run or self.files.run(unit), log or self.log, hook)


def run_one(
    work: UnitWork,
    unit: Unit,
    files: RunFiles,
    log: Callable[[str], None],
    on_epoch: Callable[[str, dict], None] | None = None,
) -> None:
    """One (model, z, seed): train the autoencoder, embed, fit the predictor grid, retrain
    the decoder; each step skipped where its file shows it finished. `on_epoch(phase, row)` is
    called after each epoch of both trainings, phase "train" or "retrain" (see
    `train_autoencoder`)."""
    config, parts, progress = work.config, work.parts, work.progress

    def hook(phase: str) -> Callable[[dict], None] | None:
        return (lambda row: on_epoch(phase, row)) if on_epoch else None

    name, data = files.root.name, parts.data
    for folder in (files.root, files.retrain.root):
        remove_stale_temporary_files(folder)
    if files.retrain_result.exists():
        return
    train_config = config.train_config(unit.model, unit.seed, len(parts.ae_train))
    expected = config.autoencoder_config(unit.model, unit.z, data.autoencoder.image_size)
    if files.train_result.exists():
        # A finished training keeps no checkpoint; one left here (sent by a Ray task whose worker
        # was then lost) would otherwise stay in the finished run.
        files.checkpoint.unlink(missing_ok=True)
        model = load_autoencoder(files.root)
        if model.config != expected:
            raise ConfigError(
                f"{files.root} holds a {model.config.kind} with z = {model.config.latent_dim} at "
                f"{model.config.image_size} px, not this unit's {expected.kind} with z = "
                f"{unit.z} at {expected.image_size} px; delete that folder and rerun to train it"
            )
    else:
        log(f"{name}: training the autoencoder ({train_config.loss} loss)")
        model = build_autoencoder(expected, seed=unit.seed)
        train_autoencoder(
            model,
            parts.ae_train,
            parts.ae_val,
            train_config,
            run_dir=files.root,
            progress=progress,
            log=log,
            on_epoch=hook("train"),
        )

    device = config.train.device
    if not files.predictors.exists():
        log(f"{name}: embedding and fitting the predictor grid")
        zp = cached_embeddings(files.embeddings("predictor"), model, data.predictor, device)
        zt = cached_embeddings(files.embeddings("test"), model, data.test, device)
        fit_predictors(
            data.task,
            zp[parts.pred_train],
            parts.y_train,
            zp[parts.pred_val],
            parts.y_val,
            zt,
            parts.y_test,
            config.predictor_config(unit.seed),
            files,
            progress=progress,
        )

    before = reconstruction_l1(model, data.test, device=device)
    recon_before = reconstruct(model, data.test, parts.sample, device)
    if config.retrain_epochs == 0:
        # No decoder retraining (the quick preset's choice): Table VIII reads the reconstructions as
        # trained.
        after, recon_after, epochs_run, best_epoch = before, recon_before, 0, 0
    else:
        log(f"{name}: retraining the decoder with pixel loss")
        result = train_autoencoder(
            model,
            parts.ae_train,
            parts.ae_val,
            config.retrain_config(unit.model, unit.seed, len(parts.ae_train)),
            run_dir=files.retrain.root,
            progress=progress,
            log=log,
            freeze_encoder=True,
            on_epoch=hook("retrain"),
        )
        after = reconstruction_l1(model, data.test, device=device)
        recon_after = reconstruct(model, data.test, parts.sample, device)
        epochs_run, best_epoch = result.epochs_run, result.best_epoch
    atomic_write_bytes(
        files.reconstructions, lambda f: np.save(f, np.stack([recon_before, recon_after]))
    )
    RetrainRecord(before, after, epochs_run, best_epoch).write_result(files.retrain_result)
