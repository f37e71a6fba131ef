"""A study's settings: its models (variants: the four of Table II, or any kind and loss),
`StudyConfig` and the presets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError, JsonConfig, MAX_SEED, setting
from ..data import check_image_size
from ..data.lunarlander import LunarLanderConfig
from ..loss import LOSSES
from ..model import MAX_LATENT, AutoencoderConfig
from ..perceptual_networks import QUICK_PERCEPTUAL_NETWORK, parse_net
from ..predictors import PredictorConfig
from ..training import TrainConfig
from ..variants import PAPER_MODELS, Variant, parse_variant, parse_variants


# The paper's loss: its gamma, and its perceptual term unscaled. The study's training is
# TrainConfig's defaults with these; `percae train` and the quick preset keep TrainConfig's,
# chosen for the calibrated scale (docs/results/perceptual-scale.md).
PAPER_KL_WEIGHT = 0.01
PAPER_PERCEPTUAL_SCALE = 1.0


def paper_training() -> TrainConfig:
    return TrainConfig(kl_weight=PAPER_KL_WEIGHT, perceptual_scale=PAPER_PERCEPTUAL_SCALE)


# The smallest batch the rule of min_steps_per_epoch gives: BatchNorm needs a few images.
MIN_BATCH = 8

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
    # Variants (percae.variants): AE, VAE, P.AE, P.VAE, AE[ssim], P.AE[alexnet-random:relu3], ...
    models: tuple[str, ...] = setting(PAPER_MODELS, option="--models")
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
    # None: the autoencoders train at train.batch_size; else at the largest power of two up to it
    # that gives this many optimizer steps per epoch over the training images (`batch_size_for`).
    min_steps_per_epoch: int | None = setting(None, min=1)
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
        if not self.models:
            raise ConfigError("--models needs at least one model")
        parse_variants(self.models, self.train.perceptual_net)
        if not self.z_sizes:
            raise ConfigError("--z needs at least one latent size")
        if len(set(self.z_sizes)) != len(self.z_sizes):
            raise ConfigError(
                f"--z names a latent size twice ({', '.join(map(str, self.z_sizes))}); give each "
                "once"
            )
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
        """The study's network (--perceptual-net), None where no model uses it (P.AE and
        P.VAE do; P.AE[NET] uses its own)."""
        uses = any(v.uses_network and v.network is None for v in self.variants())
        return self.train.perceptual_net if uses else None

    def variants(self) -> list[Variant]:
        return [parse_variant(m) for m in self.models]

    def networks(self) -> dict[str, str | None]:
        """Each network the study's losses use -> the weights it is built from."""
        nets = {v.network_of(self.train.perceptual_net) for v in self.variants()}
        return {net: self.weights_of(net) for net in sorted(n for n in nets if n)}

    def weights_of(self, network: str) -> str | None:
        """--perceptual-weights is the study's network's, and that of its family's other layers
        (P.AE[alexnet:relu4] beside --perceptual-net alexnet); other networks have their own."""
        same = parse_net(network)[0] == parse_net(self.train.perceptual_net)[0]
        return self.train.perceptual_weights if same else None

    def uses(self, loss: str = "perceptual", kind: str | None = None) -> bool:
        """Whether one of the study's models trains with `loss` (or is of `kind`, ae or vae)."""
        return any(v.kind == kind if kind else v.loss == loss for v in self.variants())

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
        if previous.perceptual_net is None:
            free |= {"train.perceptual_net"}
        if not any(previous.weights_of(net) for net in previous.networks()):
            free.add("train.perceptual_weights")
        if not any(LOSSES[v.loss].scaled for v in previous.variants()):
            free.add("train.perceptual_scale")
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
        return AutoencoderConfig(parse_variant(model).kind, z, image_size)

    def batch_size_for(self, images: int) -> int:
        """The autoencoders' batch size over `images` training images: train.batch_size, or
        with min_steps_per_epoch the largest power of two up to it that gives that many steps
        per epoch (MIN_BATCH at least: BatchNorm needs a batch)."""
        size = self.train.batch_size
        if self.min_steps_per_epoch is None:
            return size
        fit = 2 ** int(math.log2(max(1, images // self.min_steps_per_epoch)))
        return min(size, max(MIN_BATCH, fit))

    def train_config(self, model: str, seed: int, images: int | None = None) -> TrainConfig:
        """The training of `model` (a variant: AE, P.AE, AE[ssim], ...) with one training seed
        on `images` training images (they set the batch size where the study has a rule for
        it); a variant with its own network trains with that network (and its weights)."""
        variant = parse_variant(model)
        own = {} if images is None else {"batch_size": self.batch_size_for(images)}
        if variant.network is not None:
            own |= {
                "perceptual_net": variant.network,
                "perceptual_weights": self.weights_of(variant.network),
            }
        return replace(self.train, loss=variant.loss, seed=seed, **own)

    def retrain_config(self, model: str, seed: int, images: int | None = None) -> TrainConfig:
        """The decoder retraining of `model`: its training, with pixel loss, for retrain_epochs."""
        return replace(
            self.train_config(model, seed, images), loss="pixel", epochs=self.retrain_epochs
        )

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
