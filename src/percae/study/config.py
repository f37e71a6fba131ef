"""A study's settings: the four models of Table II, `StudyConfig` and the presets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path


from ..config import (
    MAX_SEED,
    ConfigError,
    JsonConfig,
    setting,
)
from ..data import (
    check_image_size,
)
from ..data.lunarlander import LunarLanderConfig
from ..device import resolve_device
from ..loss import AUTO_SCALE, check_perceptual_scale
from ..model import MAX_LATENT, AutoencoderConfig
from ..predictors import PredictorConfig
from ..training import TrainConfig


# Study model name -> (autoencoder kind, loss).
MODEL_VARIANTS: dict[str, tuple[str, str]] = {
    "AE": ("ae", "pixel"),
    "VAE": ("vae", "pixel"),
    "P.AE": ("ae", "perceptual"),
    "P.VAE": ("vae", "perceptual"),
}

# Each perceptual model's pixel-wise twin: the same autoencoder kind with pixel loss.
PIXEL_OF: dict[str, str] = {
    model: next(m for m, (k, loss) in MODEL_VARIANTS.items() if k == kind and loss == "pixel")
    for model, (kind, loss_name) in MODEL_VARIANTS.items()
    if loss_name == "perceptual"
}


# The paper's loss: its gamma, and its perceptual term unscaled.
PAPER_KL_WEIGHT = 0.01
PAPER_PERCEPTUAL_SCALE = 1.0


@dataclass
class StudyConfig(JsonConfig):
    dataset: str = "lunarlander"
    root: str | None = None  # the data; for LunarLander the collection (generated if missing)
    preset: str = setting("paper", option="preset", choices=("paper", "quick"))
    z_sizes: tuple[int, ...] = setting((32, 64, 128, 256), option="--z", min=1, max=MAX_LATENT)
    models: tuple[str, ...] = setting(
        ("AE", "VAE", "P.AE", "P.VAE"), option="--models", choices=tuple(MODEL_VARIANTS)
    )
    # The settings each unit's trainings and predictors are built from (`train_config`,
    # `retrain_config`, `predictor_config`, by name): where a default is the part's own, it is
    # read from the part's class, so that it is written once.
    ae_epochs: int = setting(TrainConfig.epochs, option="--epochs", min=1)
    predictor_epochs: int = setting(PredictorConfig.epochs, min=1)
    retrain_epochs: int = setting(50, min=0)  # the paper's; 0: no decoder retraining
    batch_size: int = setting(TrainConfig.batch_size, min=2)  # training and decoder retraining
    ae_lr: float = setting(TrainConfig.lr, option="--lr", above=0)  # and decoder retraining
    # Not an option of `reproduce` (a --config file may set it): named as the file names it.
    predictor_batch_size: int = setting(
        PredictorConfig.batch_size, option="predictor_batch_size", min=1
    )
    # gamma of every VAE. The paper's, as the study's default; `percae train` and the quick
    # preset use TrainConfig's, chosen for the calibrated scale.
    kl_weight: float = setting(PAPER_KL_WEIGHT, min=0)
    perceptual_net: str | None = None  # None: by `choose_perceptual_net` (the paper's AlexNet)
    perceptual_weights: str | None = None
    # The paper's loss, as the study's default; "auto" calibrates it (see TrainConfig).
    perceptual_scale: float | str = PAPER_PERCEPTUAL_SCALE
    rollouts: int = LunarLanderConfig.rollouts  # LunarLander collection size, when it is generated
    # None: the dataset's own (64 px; STL-10 96 px); folders are resized to it.
    image_size: int | None = None
    steps: int = LunarLanderConfig.steps
    max_autoencoder_images: int | None = setting(None, min=1)  # subsample big sets (quick presets)
    max_predictor_images: int | None = setting(None, min=1)
    max_test_images: int | None = setting(None, min=1)
    # The data's: collection, subsampling and splits; also the first training seed.
    seed: int = setting(LunarLanderConfig.seed, min=0, max=MAX_SEED)
    # Training seeds (model initialisation, batch order, predictor initialisation): each
    # (model, z) is trained once per seed, on the same data. None: (seed,).
    seeds: tuple[int, ...] | None = setting(None, min=0, max=MAX_SEED)
    device: str = "auto"
    # Set by the study: its data's fingerprint (StudyData.fingerprint), so that a rerun on a
    # dataset changed in place is refused rather than mixed with the finished units.
    data_fingerprint: str | None = None

    def validate(self) -> None:
        super().validate()
        if not self.z_sizes:
            raise ConfigError("--z needs at least one latent size")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"--seeds needs distinct non-negative seeds, got {self.seeds}")
        check_perceptual_scale(self.perceptual_scale)
        if self.image_size is not None:
            check_image_size(self.image_size, ConfigError)
        if self.dataset == "lunarlander":
            self.lunarlander_config().validate()
        elif self.root is None:
            raise ConfigError(
                f"--root DIR is needed for {self.dataset}: the folder that holds its files"
            )
        elif not Path(self.root).is_dir():
            raise ConfigError(
                f"--root {self.root} is not a folder; give the folder that holds the {self.dataset} files"
            )
        resolve_device(self.device)

    def lunarlander_config(self) -> LunarLanderConfig:
        """The settings of the LunarLander collection this study generates when it is missing."""
        size = {} if self.image_size is None else {"image_size": self.image_size}
        return LunarLanderConfig(rollouts=self.rollouts, steps=self.steps, seed=self.seed, **size)

    def updated(self, **settings) -> "StudyConfig":
        """This study with the settings given (those not None) changed, validated: `reproduce
        --config FILE` reruns a study from its own study_config.json, options on top."""
        config = replace(self, **{k: v for k, v in settings.items() if v is not None})
        config.validate()
        return config

    def conflicts_with(self, previous: "StudyConfig") -> list[str]:
        """What this study changes of `previous`'s units, as "setting: was -> now": a study may
        grow (more seeds, latent sizes, models; the tables are rebuilt from all of them) and
        move to another device, and a setting that none of its units used may change (the KL
        weight of a study without VAEs); anything else would mix two studies in one folder."""
        free = {
            "device",
            "seeds",
            "z_sizes",
            "models",
            "data_fingerprint",
        }  # (the data is checked once read)
        if not any(MODEL_VARIANTS[m][1] == "perceptual" for m in previous.models):
            free |= {"perceptual_net", "perceptual_weights", "perceptual_scale"}
        if not any(MODEL_VARIANTS[m][0] == "vae" for m in previous.models):
            free.add("kl_weight")
        before, now = previous.to_dict(), self.to_dict()
        out = [
            f"{k}: {before.get(k)!r} -> {now[k]!r}"
            for k in now
            if k not in free and before.get(k) != now[k]
        ]
        for name, was, new in (
            ("seeds", previous.training_seeds(), self.training_seeds()),
            ("z_sizes", previous.z_sizes, self.z_sizes),
            ("models", previous.models, self.models),
        ):
            if not set(was) <= set(new):
                out.append(
                    f"{name}: {', '.join(map(str, sorted(set(was) - set(new))))} dropped (a study grows, it "
                    "does not shrink)"
                )
        return out

    def training_seeds(self) -> tuple[int, ...]:
        return self.seeds if self.seeds is not None else (self.seed,)

    def autoencoder_config(self, model: str, z: int, image_size: int) -> AutoencoderConfig:
        return AutoencoderConfig(MODEL_VARIANTS[model][0], z, image_size)

    def train_config(self, model: str, seed: int) -> TrainConfig:
        """The training of `model` (AE, VAE, P.AE, P.VAE) with one training seed."""
        net = self.perceptual_net if self.perceptual_net is not None else TrainConfig.perceptual_net
        return TrainConfig(
            loss=MODEL_VARIANTS[model][1],
            perceptual_net=net,  # (a study of pixel-wise models alone names none)
            perceptual_weights=self.perceptual_weights,
            perceptual_scale=self.perceptual_scale,
            kl_weight=self.kl_weight,
            epochs=self.ae_epochs,
            batch_size=self.batch_size,
            lr=self.ae_lr,
            seed=seed,
            device=self.device,
        )

    def retrain_config(self, model: str, seed: int) -> TrainConfig:
        """The decoder retraining of `model`: its training, with pixel loss, for retrain_epochs."""
        return replace(self.train_config(model, seed), loss="pixel", epochs=self.retrain_epochs)

    def predictor_config(self, seed: int) -> PredictorConfig:
        return PredictorConfig(
            epochs=self.predictor_epochs,
            batch_size=self.predictor_batch_size,
            seed=seed,
            device=self.device,
        )


PRESETS: dict[str, dict[str, dict]] = {
    "lunarlander": {
        "paper": {},  # the defaults
        # Sized by measurement to show the paper's effect on 2 CPU cores in 10 minutes
        # (docs/results/quick-preset): batch 16 gives the autoencoders enough steps in 2 epochs; no
        # decoder retraining (Table VIII reads the reconstructions as trained) to leave time for 3 seeds.
        "quick": dict(
            z_sizes=(32,),
            models=("AE", "P.AE"),
            rollouts=200,
            ae_epochs=2,
            batch_size=16,
            predictor_epochs=300,
            retrain_epochs=0,
            seed_count=3,
            perceptual_scale=AUTO_SCALE,
            kl_weight=TrainConfig.kl_weight,
        ),
    },
    "stl10": {
        "paper": dict(z_sizes=(64, 128, 256, 512)),
        "quick": dict(
            z_sizes=(64,),
            ae_epochs=2,
            predictor_epochs=200,
            retrain_epochs=1,
            max_autoencoder_images=2000,
            max_predictor_images=2000,
            max_test_images=2000,
        ),
    },
    "svhn": {
        "paper": dict(z_sizes=(32, 64, 128)),
        "quick": dict(
            z_sizes=(32,),
            ae_epochs=3,
            predictor_epochs=200,
            retrain_epochs=1,
            max_autoencoder_images=4000,
            max_predictor_images=4000,
            max_test_images=2000,
        ),
    },
    "folder": {
        "paper": dict(z_sizes=(32, 64, 128)),
        "quick": dict(z_sizes=(32,), ae_epochs=5, predictor_epochs=200, retrain_epochs=2),
    },
}


def preset_config(dataset: str, preset: str = "paper", **overrides) -> StudyConfig:
    """A StudyConfig from a preset, with explicit settings (not None) on top."""
    if dataset not in PRESETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(PRESETS)}")
    if preset not in PRESETS[dataset]:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS[dataset])}")
    values = dict(PRESETS[dataset][preset])
    # A preset names how many training seeds, not which: they start at the chosen --seed.
    seed_count = values.pop("seed_count", 1)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("seeds") is None and seed_count > 1:
        values["seeds"] = tuple(range(values.get("seed", 0), values.get("seed", 0) + seed_count))
    config = StudyConfig(dataset=dataset, preset=preset, **values)
    config.validate()
    return config
