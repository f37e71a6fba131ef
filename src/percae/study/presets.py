"""The presets of `percae reproduce --preset`: for each dataset the paper's study and a quick
one, each stating only what differs from a study's defaults."""

from __future__ import annotations

from dataclasses import replace

from ..config import ConfigError
from ..loss import AUTO_SCALE
from ..perceptual_networks import QUICK_PERCEPTUAL_NETWORK
from ..training import TrainConfig
from .config import StudyConfig, with_settings


# What every quick preset shares (with the paper's four models, a study's default): the offline
# network, the same on every machine; the loss at pixel MSE's scale and the KL weight that keeps
# every VAE's latent units on it (docs/results/perceptual-scale.md); three seeds, so that every
# comparison has an interval; two units at once, a thread each (study.executors.LocalExecutor).
QUICK = dict(
    train=dict(
        perceptual_net=QUICK_PERCEPTUAL_NETWORK,
        perceptual_scale=AUTO_SCALE,
        kl_weight=TrainConfig.kl_weight,
    ),
    seed_count=3,
    workers=2,
)


def _quick(**values) -> dict:
    return {**QUICK, **values, "train": {**QUICK["train"], **values.get("train", {})}}


PRESETS: dict[str, dict[str, dict]] = {
    "lunarlander": {
        "paper": {},  # the defaults
        # Sized by measurement to show the paper's effect on 2 CPU cores in 10 minutes, with a
        # margin for a slower machine (docs/results/quick-preset): batch 16 gives the autoencoders
        # enough steps in 2 epochs over 10 000 of the collection's frames (whole rollouts); no
        # decoder retraining (Table VIII reads the reconstructions as trained) to leave time for
        # the four models' three seeds.
        "quick": _quick(
            z_sizes=(32,),
            rollouts=200,
            train=dict(epochs=2, batch_size=16),
            predictor=dict(epochs=300),
            retrain_epochs=0,
            max_autoencoder_images=10_000,
        ),
    },
    # The classification quick presets set the batch size by rule: at least 50 optimizer steps
    # an epoch over the training images there are (a small folder would otherwise train a
    # handful of steps at the paper's 512).
    "stl10": {
        "paper": dict(z_sizes=(64, 128, 256, 512)),
        "quick": _quick(
            z_sizes=(64,),
            train=dict(epochs=2),
            predictor=dict(epochs=200),
            retrain_epochs=1,
            max_autoencoder_images=2000,
            max_predictor_images=2000,
            max_test_images=2000,
            min_steps_per_epoch=50,
        ),
    },
    "svhn": {
        "paper": dict(z_sizes=(32, 64, 128)),
        "quick": _quick(
            z_sizes=(32,),
            train=dict(epochs=3),
            predictor=dict(epochs=200),
            retrain_epochs=1,
            max_autoencoder_images=4000,
            max_predictor_images=4000,
            max_test_images=2000,
            min_steps_per_epoch=50,
        ),
    },
    "folder": {
        "paper": dict(z_sizes=(32, 64, 128)),
        # γ 2.5e-4: on a folder of 600 images in three classes γ 1e-3 left the pixel-wise VAE
        # no active unit in one seed of three; 2.5e-4 kept 28-32 in every seed
        # (docs/results/folder-quick).
        "quick": _quick(
            z_sizes=(32,),
            train=dict(epochs=5, kl_weight=2.5e-4),
            predictor=dict(epochs=200),
            retrain_epochs=2,
            min_steps_per_epoch=50,
        ),
    },
}


def preset_config(dataset: str, preset: str = "paper", **overrides) -> StudyConfig:
    """A StudyConfig from a preset, with explicit settings (not None) on top; a part's setting
    is named PART__NAME (`preset_config("lunarlander", "quick", train__epochs=1)`)."""
    if dataset not in PRESETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(PRESETS)}")
    if preset not in PRESETS[dataset]:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS[dataset])}")
    values = dict(PRESETS[dataset][preset])
    # A preset names how many training seeds, not which: they start at the chosen --seed; and
    # how many units run at once, which is the executor's (`preset_workers`).
    seed_count = values.pop("seed_count", 1)
    values.pop("workers", None)
    config = with_settings(StudyConfig(dataset=dataset, preset=preset), values)
    config = with_settings(config, overrides)
    if config.seeds is None and seed_count > 1:
        config = replace(config, seeds=tuple(range(config.seed, config.seed + seed_count)))
    config.validate()
    return config


def preset_workers(config: StudyConfig) -> int:
    """How many units of a study run at once on the local executor: its preset's (the quick
    presets run two, a thread each), else one."""
    return PRESETS.get(config.dataset, {}).get(config.preset, {}).get("workers", 1)
