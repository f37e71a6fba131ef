"""One unit of a study, (model, latent size, training seed): train the autoencoder, embed,
fit the predictor grid, retrain the decoder; each step skipped where its file shows it
finished."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import (
    REQUIRED,
    ConfigError,
    JsonConfig,
    setting,
    atomic_write_bytes,
    remove_stale_temporary_files,
)
from ..embeddings import cached_embeddings, reconstruct, reconstruction_l1
from ..model import build_autoencoder, load_autoencoder
from ..layout import RunFiles, run_name
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
    return [
        Unit(model, z, seed)
        for seed in config.training_seeds()
        for z in config.z_sizes
        for model in config.models
    ]


def run_one(
    config: StudyConfig,
    model_name: str,
    z: int,
    seed: int,
    parts: StudyParts,
    files: RunFiles,
    progress: bool,
    log: Callable[[str], None],
    on_epoch: Callable[[str, dict], None] | None = None,
) -> None:
    """One (model, z, seed): train the autoencoder, embed, fit the predictor grid, retrain
    the decoder; each step skipped where its file shows it finished. `on_epoch(phase, row)` is
    called after each epoch of both trainings, phase "train" or "retrain" (see
    `train_autoencoder`)."""

    def hook(phase: str) -> Callable[[dict], None] | None:
        return (lambda row: on_epoch(phase, row)) if on_epoch else None

    name, data = files.root.name, parts.data
    for folder in (files.root, files.retrain.root):
        remove_stale_temporary_files(folder)
    if files.retrain_result.exists():
        log(f"{name}: finished earlier, skipped")
        return
    train_config = config.train_config(model_name, seed)
    if files.train_result.exists():
        # A finished training keeps no checkpoint; one left here (sent by a Ray task whose worker
        # was then lost) would otherwise stay in the finished run.
        files.checkpoint.unlink(missing_ok=True)
        model = load_autoencoder(files.root)
        expected = config.autoencoder_config(model_name, z, data.autoencoder.image_size)
        if model.config != expected:
            raise ConfigError(
                f"{files.root} holds a {model.config.kind} with z = {model.config.latent_dim} at "
                f"{model.config.image_size} px, not this unit's {expected.kind} with z = {z} at "
                f"{expected.image_size} px; delete that folder and rerun to train it"
            )
    else:
        log(f"{name}: training the autoencoder ({train_config.loss} loss)")
        model = build_autoencoder(
            config.autoencoder_config(model_name, z, data.autoencoder.image_size), seed=seed
        )
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

    if not files.predictors.exists():
        log(f"{name}: embedding and fitting the predictor grid")
        zp = cached_embeddings(
            files.embeddings("predictor"), model, data.predictor, config.train.device
        )
        zt = cached_embeddings(files.embeddings("test"), model, data.test, config.train.device)
        fit_predictors(
            data.task,
            zp[parts.pred_train],
            parts.y_train,
            zp[parts.pred_val],
            parts.y_val,
            zt,
            parts.y_test,
            config.predictor_config(seed),
            files,
        )

    before = reconstruction_l1(model, data.test, device=config.train.device)
    recon_before = reconstruct(model, data.test, parts.sample, config.train.device)
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
            config.retrain_config(model_name, seed),
            run_dir=files.retrain.root,
            progress=progress,
            log=log,
            freeze_encoder=True,
            on_epoch=hook("retrain"),
        )
        after = reconstruction_l1(model, data.test, device=config.train.device)
        recon_after = reconstruct(model, data.test, parts.sample, config.train.device)
        epochs_run, best_epoch = result.epochs_run, result.best_epoch
    atomic_write_bytes(
        files.reconstructions, lambda f: np.save(f, np.stack([recon_before, recon_after]))
    )
    record = RetrainRecord(before, after, epochs_run, best_epoch)
    record.write_result(files.retrain_result)
