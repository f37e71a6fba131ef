"""A study's settings: the four models of Table II, `StudyConfig` and the presets."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..config import MAX_SEED, ConfigError, JsonConfig, setting
from ..data import check_image_size
from ..data.lunarlander import LunarLanderConfig
from ..loss import AUTO_SCALE
from ..model import MAX_LATENT, AutoencoderConfig
from ..perceptual_networks import QUICK_PERCEPTUAL_NETWORK
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


# The paper's loss: its gamma, and its perceptual term unscaled. The study's training is
# TrainConfig's defaults with these; `percae train` and the quick preset keep TrainConfig's,
# chosen for the calibrated scale (docs/results/perceptual-scale.md).
PAPER_KL_WEIGHT = 0.01
PAPER_PERCEPTUAL_SCALE = 1.0


def paper_training() -> TrainConfig:
    return TrainConfig(kl_weight=PAPER_KL_WEIGHT, perceptual_scale=PAPER_PERCEPTUAL_SCALE)


# Where the settings of study_config.json files written before its parts were nested now are.
FLAT_SETTINGS = {
    "ae_epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "ae_lr": ("train", "lr"),
    "kl_weight": ("train", "kl_weight"),
    "perceptual_net": ("train", "perceptual_net"),
    "perceptual_weights": ("train", "perceptual_weights"),
    "perceptual_scale": ("train", "perceptual_scale"),
    "device": ("train", "device"),
    "predictor_epochs": ("predictor", "epochs"),
    "predictor_batch_size": ("predictor", "batch_size"),
}


@dataclass
class StudyConfig(JsonConfig):
    dataset: str = "lunarlander"
    root: str | None = None  # the data; for LunarLander the collection (generated if missing)
    preset: str = setting("paper", option="preset", choices=("paper", "quick"))
    z_sizes: tuple[int, ...] = setting((32, 64, 128, 256), option="--z", min=1, max=MAX_LATENT)
    models: tuple[str, ...] = setting(
        ("AE", "VAE", "P.AE", "P.VAE"), option="--models", choices=tuple(MODEL_VARIANTS)
    )
    # Every unit's training is this one with the unit's loss and seed (`train_config`); its
    # decoder retraining the same with pixel loss for `retrain_epochs`; its predictor grid
    # `predictor` with the unit's seed, on the training's device.
    train: TrainConfig = field(default_factory=paper_training)
    retrain_epochs: int = setting(50, min=0)  # the paper's; 0: no decoder retraining
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
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
    # Set by the study: its data's fingerprint (StudyData.fingerprint), so that a rerun on a
    # dataset changed in place is refused rather than mixed with the finished units.
    data_fingerprint: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StudyConfig":
        """Strictly, as every config; a part given in part is the study's default part with
        those settings changed, and a file of the flat schema (before the parts were nested)
        is read into the parts."""
        if not isinstance(data, dict):
            return super().from_dict(data)
        data = dict(data)
        parts: dict[str, dict] = {"train": {}, "predictor": {}}
        flat = [old for old in FLAT_SETTINGS if old in data]
        if flat and any(part in data for part in parts):
            raise ConfigError(
                f"StudyConfig: {', '.join(flat)} beside the parts train and predictor; give each "
                "setting once, in its part"
            )
        for old in flat:
            part, name = FLAT_SETTINGS[old]
            value = data.pop(old)
            if old == "perceptual_net" and value is None:
                # No network named: the rule of that schema, the quick presets' offline network
                # and the paper's otherwise.
                quick = data.get("preset") == "quick"
                value = QUICK_PERCEPTUAL_NETWORK if quick else TrainConfig.perceptual_net
            parts[part][name] = value
        defaults = cls()
        for part in parts:
            given = data.get(part, {})
            if isinstance(given, dict):
                data[part] = {**getattr(defaults, part).to_dict(), **parts[part], **given}
        return super().from_dict(data)

    def validate(self) -> None:
        super().validate()
        if not self.z_sizes:
            raise ConfigError("--z needs at least one latent size")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"--seeds needs distinct non-negative seeds, got {self.seeds}")
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
                f"--root {self.root} is not a folder; give the folder that holds the "
                f"{self.dataset} files"
            )

    @property
    def perceptual_net(self) -> str | None:
        """The network of the study's perceptual models; None in a study without one."""
        return self.train.perceptual_net if self.uses("perceptual") else None

    def uses(self, loss: str = "perceptual", kind: str | None = None) -> bool:
        """Whether one of the study's models trains with `loss` (or is of `kind`, ae or vae)."""
        return any(
            MODEL_VARIANTS[m][0] == kind if kind else MODEL_VARIANTS[m][1] == loss
            for m in self.models
        )

    def lunarlander_config(self) -> LunarLanderConfig:
        """The settings of the LunarLander collection this study generates when it is missing."""
        size = {} if self.image_size is None else {"image_size": self.image_size}
        return LunarLanderConfig(rollouts=self.rollouts, steps=self.steps, seed=self.seed, **size)

    def updated(self, **settings) -> "StudyConfig":
        """This study with the settings given (those not None) changed, validated: `reproduce
        --config FILE` reruns a study from its own study_config.json, options on top. A part's
        setting is named PART__NAME (`train__kl_weight=0.5`)."""
        config = with_settings(self, settings)
        config.validate()
        return config

    def conflicts_with(self, previous: "StudyConfig") -> list[str]:
        """What this study changes of `previous`'s units, as "setting: was -> now": a study may
        grow (more seeds, latent sizes, models; the tables are rebuilt from all of them) and
        move to another device, and a setting that none of its units used may change (the KL
        weight of a study without VAEs); anything else would mix two studies in one folder."""
        # (The data is checked once read.)
        free = {"train.device", "seeds", "z_sizes", "models", "data_fingerprint"}
        # How fast, not what (as for a resumed training), and what each unit sets for itself.
        free |= {"train.compile", "train.feature_cache_mb", "train.loss", "train.seed"}
        free |= {"train.data_fingerprint", "predictor.seed", "predictor.device"}
        if not previous.uses("perceptual"):
            free |= {"train.perceptual_net", "train.perceptual_weights", "train.perceptual_scale"}
        if not previous.uses(kind="vae"):
            free.add("train.kl_weight")
        before, now = _dotted(previous.to_dict()), _dotted(self.to_dict())
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
                    f"{name}: {', '.join(map(str, sorted(set(was) - set(new))))} dropped (a study "
                    "grows, it does not shrink)"
                )
        return out

    def training_seeds(self) -> tuple[int, ...]:
        return self.seeds if self.seeds is not None else (self.seed,)

    def autoencoder_config(self, model: str, z: int, image_size: int) -> AutoencoderConfig:
        return AutoencoderConfig(MODEL_VARIANTS[model][0], z, image_size)

    def train_config(self, model: str, seed: int) -> TrainConfig:
        """The training of `model` (AE, VAE, P.AE, P.VAE) with one training seed."""
        return replace(self.train, loss=MODEL_VARIANTS[model][1], seed=seed)

    def retrain_config(self, model: str, seed: int) -> TrainConfig:
        """The decoder retraining of `model`: its training, with pixel loss, for retrain_epochs."""
        return replace(self.train_config(model, seed), loss="pixel", epochs=self.retrain_epochs)

    def predictor_config(self, seed: int) -> PredictorConfig:
        return replace(self.predictor, seed=seed, device=self.train.device)


def _dotted(settings: dict, prefix: str = "") -> dict:
    """{"train": {"epochs": 2}} -> {"train.epochs": 2}."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def with_settings(config: StudyConfig, settings: dict[str, Any]) -> StudyConfig:
    """`config` with the settings given (those not None) changed; a part's setting is named
    PART__NAME (`train__epochs`), as the `reproduce` options name them."""
    top: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        if value is None:
            continue
        part, _, name = key.rpartition("__")
        if part:
            parts.setdefault(part, {})[name] = value
        elif isinstance(value, dict):  # a preset's part: {"train": {"epochs": 2}}
            parts.setdefault(key, {}).update(value)
        else:
            top[key] = value
    unknown = sorted(set(top) - {f.name for f in fields(config)})
    if unknown:
        raise ConfigError(f"a study has no setting {', '.join(unknown)}")
    for part, values in parts.items():
        current = getattr(config, part, None)
        if not isinstance(current, JsonConfig):
            raise ConfigError(f"{part} is not a part of a study's settings")
        unknown = sorted(set(values) - {f.name for f in fields(current)})
        if unknown:
            raise ConfigError(f"{part} has no setting {', '.join(unknown)}")
        top[part] = replace(current, **values)
    return replace(config, **top)


PRESETS: dict[str, dict[str, dict]] = {
    "lunarlander": {
        "paper": {},  # the defaults
        # Sized by measurement to show the paper's effect on 2 CPU cores in 10 minutes, with a
        # margin for a slower machine (docs/results/quick-preset): batch 16 gives the autoencoders
        # enough steps in 2 epochs over 10 000 of the collection's frames (whole rollouts); no
        # decoder retraining (Table VIII reads the reconstructions as trained) to leave time for 3
        # seeds.
        # Every quick preset's network is the offline one, the same on every machine.
        "quick": dict(
            z_sizes=(32,),
            models=("AE", "P.AE"),
            rollouts=200,
            train=dict(
                epochs=2,
                batch_size=16,
                perceptual_net=QUICK_PERCEPTUAL_NETWORK,
                perceptual_scale=AUTO_SCALE,
                kl_weight=TrainConfig.kl_weight,
            ),
            predictor=dict(epochs=300),
            retrain_epochs=0,
            max_autoencoder_images=10_000,
            seed_count=3,
        ),
    },
    "stl10": {
        "paper": dict(z_sizes=(64, 128, 256, 512)),
        "quick": dict(
            z_sizes=(64,),
            train=dict(epochs=2, perceptual_net=QUICK_PERCEPTUAL_NETWORK),
            predictor=dict(epochs=200),
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
            train=dict(epochs=3, perceptual_net=QUICK_PERCEPTUAL_NETWORK),
            predictor=dict(epochs=200),
            retrain_epochs=1,
            max_autoencoder_images=4000,
            max_predictor_images=4000,
            max_test_images=2000,
        ),
    },
    "folder": {
        "paper": dict(z_sizes=(32, 64, 128)),
        "quick": dict(
            z_sizes=(32,),
            train=dict(epochs=5, perceptual_net=QUICK_PERCEPTUAL_NETWORK),
            predictor=dict(epochs=200),
            retrain_epochs=2,
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
    # A preset names how many training seeds, not which: they start at the chosen --seed.
    seed_count = values.pop("seed_count", 1)
    config = with_settings(StudyConfig(dataset=dataset, preset=preset), values)
    config = with_settings(config, overrides)
    if config.seeds is None and seed_count > 1:
        config = replace(config, seeds=tuple(range(config.seed, config.seed + seed_count)))
    config.validate()
    return config
