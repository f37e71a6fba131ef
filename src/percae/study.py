"""The study end to end: for each model (AE, VAE, P.AE, P.VAE) and latent size, train
the autoencoder, embed the predictor and test parts once, fit the predictor grid,
test the best MLP and linear regressor, and retrain the decoder with pixel loss.

Every finished step leaves a file in its run folder (layout.StudyFiles), written atomically;
a rerun skips what is finished and resumes an interrupted autoencoder from its last
epoch checkpoint, so it ends with the same results as an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import provenance
from .config import (
    MAX_SEED,
    ConfigError,
    JsonConfig,
    atomic_write_bytes,
    atomic_write_json,
    check_output_folder,
    read_json,
    remove_stale_temporary_files,
    setting,
)
from .data import (
    DataError,
    ImageSet,
    StudyData,
    check_image_size,
    load_study_data,
    split,
    split_by_group,
)
from .data.lunarlander import LunarLanderConfig, check_collection_folder, generate_lunarlander
from .device import resolve_device
from .embeddings import cached_embeddings, reconstruct, reconstruction_l1
from .loss import check_perceptual_scale
from .perceptual_networks import (
    build_perceptual_network,
    check_perceptual_net_name,
    choose_perceptual_net,
    describe_weights,
)
from .model import MAX_LATENT, AutoencoderConfig, build_autoencoder, load_autoencoder
from .layout import RunFiles, StudyFiles, run_name
from .predictors import PredictorConfig, fit_predictors, trivial_baseline
from .training import TrainConfig, train_autoencoder

# Progress messages go to the "percae" logger unless a `log` callable is given (the CLI sets the level).
LOG = logging.getLogger(__name__)

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


@dataclass
class StudyConfig(JsonConfig):
    dataset: str = "lunarlander"
    root: str | None = None  # the data; for LunarLander the collection (generated if missing)
    preset: str = setting("paper", option="preset", choices=("paper", "quick"))
    z_sizes: tuple[int, ...] = setting((32, 64, 128, 256), option="--z", min=1, max=MAX_LATENT)
    models: tuple[str, ...] = setting(
        ("AE", "VAE", "P.AE", "P.VAE"), option="--models", choices=tuple(MODEL_VARIANTS)
    )
    ae_epochs: int = setting(50, option="--epochs", min=1, feeds={"train": "epochs"})
    predictor_epochs: int = setting(500, min=1, feeds={"predictor": "epochs"})
    retrain_epochs: int = setting(
        50, min=0, feeds={"retrain": "epochs"}
    )  # 0: no decoder retraining
    batch_size: int = setting(512, min=2)  # autoencoder training and decoder retraining
    ae_lr: float = setting(
        1e-3, option="--lr", above=0, feeds={"train": "lr"}
    )  # and decoder retraining
    # Not an option of `reproduce` (a --config file may set it): named as the file names it.
    predictor_batch_size: int = setting(
        512, option="predictor_batch_size", min=1, feeds={"predictor": "batch_size"}
    )
    kl_weight: float = setting(0.01, min=0)  # gamma of every VAE; the paper's 0.01
    perceptual_net: str | None = None  # None: the paper's AlexNet
    perceptual_weights: str | None = None
    perceptual_scale: float | str = 1.0  # the paper's loss; "auto" calibrates it (see TrainConfig)
    rollouts: int = 1400  # LunarLander collection size, when it is generated
    image_size: int | None = (
        None  # None: the dataset's own (64 px; STL-10 96 px); folders are resized to it
    )
    steps: int = 150
    max_autoencoder_images: int | None = setting(None, min=1)  # subsample big sets (quick presets)
    max_predictor_images: int | None = setting(None, min=1)
    max_test_images: int | None = setting(None, min=1)
    seed: int = setting(
        0, min=0, max=MAX_SEED
    )  # the data's: collection, subsampling and splits; also the first training seed
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
        return self.sub_config(LunarLanderConfig, ("lunarlander",))

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
        return self.sub_config(TrainConfig, ("train",), loss=MODEL_VARIANTS[model][1], seed=seed)

    def retrain_config(self, model: str, seed: int) -> TrainConfig:
        """The decoder retraining of `model`: its training, with pixel loss, for retrain_epochs."""
        return self.sub_config(TrainConfig, ("train", "retrain"), loss="pixel", seed=seed)

    def predictor_config(self, seed: int) -> PredictorConfig:
        return self.sub_config(PredictorConfig, ("predictor",), seed=seed)


PRESETS: dict[str, dict[str, dict]] = {
    "lunarlander": {
        "paper": dict(z_sizes=(32, 64, 128, 256), rollouts=1400, steps=150),
        # Sized by measurement to show the paper's effect on 2 CPU cores in 10 minutes
        # (docs/results/quick-preset): batch 16 gives the autoencoders enough steps in 2 epochs; no
        # decoder retraining (Table VIII reads the reconstructions as trained) to leave time for 3 seeds.
        "quick": dict(
            z_sizes=(32,),
            models=("AE", "P.AE"),
            rollouts=200,
            steps=150,
            ae_epochs=2,
            batch_size=16,
            predictor_epochs=300,
            retrain_epochs=0,
            seed_count=3,
            perceptual_scale="auto",
            kl_weight=1e-3,
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


def resolve_perceptual_net(
    config: StudyConfig, log: Callable[[str], None] = LOG.info
) -> tuple[str | None, str | None, str | None]:
    """(network name, note, fingerprint of its weights) for this study, by
    `perceptual_networks.choose_perceptual_net`; built now, so that a bad layer or weights file, or AlexNet's
    weights neither cached nor downloadable, are refused before any file. A study of
    pixel-wise models alone needs no network: (the one named or None, None, None)."""
    if not any(MODEL_VARIANTS[m][1] == "perceptual" for m in config.models):
        if config.perceptual_net is not None:
            check_perceptual_net_name(config.perceptual_net)
        return config.perceptual_net, None, None
    net, note = choose_perceptual_net(config.perceptual_net, config.preset)
    check_perceptual_net_name(net)
    fingerprint = provenance.network_fingerprint(
        build_perceptual_network(net, config.perceptual_weights)
    )
    if note:
        log(f"note: {note}")
    return net, note, fingerprint


def _limit(images: ImageSet, limit: int | None, seed: int) -> ImageSet:
    if limit is None or len(images) <= limit:
        return images
    groups = images.selected_groups()
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    if len(unique) < len(groups):
        # Keep whole groups (rollouts) so that later splits by group stay leak-free.
        chosen, total = [], 0
        counts = dict(zip(*np.unique(groups, return_counts=True)))
        for g in rng.permutation(unique):
            if total >= limit:
                break
            chosen.append(g)
            total += counts[g]
        return images.subset(np.flatnonzero(np.isin(groups, chosen)))
    return images.subset(np.sort(rng.choice(len(images), size=limit, replace=False)))


def data_root(config: StudyConfig, files: StudyFiles) -> Path:
    """Where the study's data is: --root, or for LunarLander by default RESULTS/data."""
    return Path(config.root) if config.root is not None else files.data


def needs_generation(config: StudyConfig, files: StudyFiles) -> bool:
    return config.dataset == "lunarlander" and not (data_root(config, files) / "meta.json").exists()


def prepare_data(
    config: StudyConfig,
    files: StudyFiles,
    log: Callable[[str], None] = LOG.info,
    progress: bool = True,
) -> StudyData:
    """Load (LunarLander: generate if missing) the dataset, apply the preset's size caps and
    refuse data no study can use (`StudyData.validate`)."""
    root = data_root(config, files)
    if needs_generation(config, files):
        log(
            f"generating the LunarLander collection ({config.rollouts} rollouts x {config.steps} steps) in {root}"
        )
        generate_lunarlander(root, config.lunarlander_config(), progress=progress)
    data = load_study_data(config.dataset, root, seed=config.seed, image_size=config.image_size)
    data.autoencoder = _limit(data.autoencoder, config.max_autoencoder_images, config.seed)
    data.predictor = _limit(data.predictor, config.max_predictor_images, config.seed + 1)
    data.test = _limit(data.test, config.max_test_images, config.seed + 2)
    data.validate(root)
    return data


def parse_seeds(text: str, first: int = 0) -> tuple[int, ...]:
    """`--seeds`: a count N (seeds first, first+1, ..., first+N-1) or a comma-separated list."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--seeds takes a count (3) or comma-separated seeds (0,1,2), got {text!r}"
        ) from None
    if len(values) == 1:
        if values[0] < 1:
            raise ConfigError(f"--seeds needs a count of at least 1, got {values[0]}")
        return tuple(range(first, first + values[0]))
    return values


@dataclass
class StudyParts:
    """What every run of a study shares: the Table I parts, the autoencoder's and the
    predictors' train/validation splits (by group), the targets, and the test images the
    figure shows."""

    data: StudyData
    ae_train: ImageSet
    ae_val: ImageSet
    pred_train: np.ndarray  # positions in data.predictor (and in its embeddings)
    pred_val: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    sample: np.ndarray  # positions in data.test

    @classmethod
    def split(cls, data: StudyData, seed: int) -> "StudyParts":
        ae_train, ae_val = split(data.autoencoder, 0.2, seed)
        pred_train, pred_val = split_by_group(data.predictor.selected_groups(), 0.2, seed)
        return cls(
            data,
            ae_train,
            ae_val,
            pred_train,
            pred_val,
            data.targets(data.predictor.subset(pred_train)),
            data.targets(data.predictor.subset(pred_val)),
            data.targets(data.test),
            np.linspace(0, len(data.test) - 1, num=min(6, len(data.test))).astype(int),
        )


# A study's per-epoch hook: (unit, phase "train" or "retrain", the epoch's history row).
EpochHook = Callable[["Unit", str, dict], None]


def run_study(
    config: StudyConfig,
    out: str | os.PathLike,
    progress: bool = True,
    log: Callable[[str], None] = LOG.info,
    executor=None,
    on_epoch: EpochHook | None = None,
) -> dict:
    """Run (or resume) the whole study into `out`; returns summary.json's content. The units
    run on `executor` (default: `LocalExecutor`, in this process; `cluster.RayExecutor` on Ray).
    `on_epoch(unit, phase, row)` is called after every epoch of every training, in this process
    whatever the executor (a place for TensorBoard, MLflow or W&B)."""
    from .report import write_report

    # Every check before the first file: a refused start leaves `out` as it was.
    config.validate()
    files = StudyFiles(check_output_folder(out))
    if config.root is not None:
        root, results = Path(config.root).resolve(), files.root.resolve()
        if results == root or root in results.parents:
            raise ConfigError(
                f"--out {out} is inside --root {config.root}: the study would read its own results as "
                "data; choose an --out outside the dataset folder"
            )
    net, net_note, net_fingerprint = resolve_perceptual_net(config, log)
    config = replace(config, perceptual_net=net)
    if files.config.exists():
        # Through StudyConfig, so that settings added since that study began take their defaults.
        conflicts = config.conflicts_with(StudyConfig.load(files.config))
        if conflicts:
            raise ConfigError(
                f"{files.root} holds a study whose finished units other settings would change ({'; '.join(conflicts)}); "
                "use another --out, or its settings (more seeds, latent sizes or models may be added)"
            )
    if files.provenance.exists():
        schema = read_json(files.provenance, "provenance file").get("schema", 0)
        if not isinstance(schema, int) or schema > provenance.SCHEMA_VERSION:
            raise ConfigError(
                f"{files.root} was written by a newer percae (results schema {schema}); upgrade percae "
                "to resume it"
            )
    executor = executor or LocalExecutor()
    executor.start(
        config
    )  # a Ray that cannot be reached, or is too small, is refused before any file
    try:
        _run_study(config, files, net_note, net_fingerprint, executor, progress, log, on_epoch)
    finally:
        executor.stop()
    return write_report(files.root)


def _run_study(
    config: StudyConfig,
    files: StudyFiles,
    net_note: str | None,
    net_fingerprint: str | None,
    executor,
    progress: bool,
    log: Callable[[str], None],
    on_epoch: EpochHook | None,
) -> None:
    created = [path for path in (files.root, data_root(config, files)) if not path.exists()]
    if needs_generation(config, files):
        check_collection_folder(data_root(config, files))
    try:
        data = prepare_data(config, files, log, progress)
        parts = StudyParts.split(data, config.seed)
    except (ConfigError, DataError):
        # Refused after generating a collection for this study (e.g. caps that leave too few
        # rollouts): the places are left as they were, and a corrected command generates anew.
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    previous = StudyConfig.load(files.config) if files.config.exists() else None
    config = replace(config, data_fingerprint=data.fingerprint())
    if previous is not None and previous.data_fingerprint not in (None, config.data_fingerprint):
        raise ConfigError(
            f"{files.root} holds a study of other data (fingerprint {previous.data_fingerprint} there, "
            f"{config.data_fingerprint} in {data_root(config, files)} now): the dataset changed since; "
            "use another --out, or restore the data"
        )
    files.root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporary_files(files.root)
    # Only once the data is known to be usable: a refused start leaves nothing to trip over. A
    # grown study's settings replace those it grew from.
    if previous != config:
        config.save(files.config)
    atomic_write_json(
        files.notes,
        {"perceptual_net": net_note, "data": data.notes} if net_note else {"data": data.notes},
    )
    record_provenance(files, config, net_fingerprint)
    log(
        f"{config.dataset}: autoencoder {len(parts.ae_train)}/{len(parts.ae_val)} train/val images, "
        f"predictor {len(parts.pred_train)}/{len(parts.pred_val)}, test {len(data.test)}; perceptual network "
        f"{config.perceptual_net} (weights: {describe_weights(config.perceptual_net, config.perceptual_weights)}); "
        "training seeds "
        f"{', '.join(map(str, config.training_seeds()))}"
    )
    atomic_write_json(
        files.baseline,
        {"task": data.task, "baseline": trivial_baseline(data.task, parts.y_train, parts.y_test)},
    )
    atomic_write_bytes(
        files.originals, lambda f: np.save(f, data.test.subset(parts.sample).materialize())
    )
    executor.run(config, parts, files, units(config), progress, log, on_epoch)


def record_provenance(files: StudyFiles, config: StudyConfig, net_fingerprint: str | None) -> None:
    """provenance.json: one session per distinct (versions, device, network) that worked on
    this study (a study resumed elsewhere lists both)."""
    session = {
        **provenance.record(resolve_device(config.device)),
        "perceptual_net": config.perceptual_net,
        "perceptual_weights": describe_weights(config.perceptual_net, config.perceptual_weights),
        "perceptual_net_sha256": net_fingerprint,
    }
    sessions = (
        read_json(files.provenance, "provenance file").get("sessions", [])
        if files.provenance.exists()
        else []
    )
    if not sessions or sessions[-1] != session:
        atomic_write_json(
            files.provenance,
            {"schema": provenance.SCHEMA_VERSION, "sessions": [*sessions, session]},
        )


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


class LocalExecutor:
    """The units one after another in this process (`--executor local`)."""

    def start(self, config: StudyConfig) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(
        self,
        config: StudyConfig,
        parts: StudyParts,
        files: StudyFiles,
        todo: list[Unit],
        progress: bool,
        log: Callable[[str], None],
        on_epoch: EpochHook | None = None,
    ) -> None:
        for unit in todo:
            hook = (lambda phase, row, unit=unit: on_epoch(unit, phase, row)) if on_epoch else None
            run_one(
                config,
                unit.model,
                unit.z,
                unit.seed,
                parts,
                files.run(unit.model, unit.z, unit.seed),
                progress,
                log,
                hook,
            )


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
    called after each epoch of both trainings, phase "train" or "retrain" (see `train_autoencoder`)."""

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
        zp = cached_embeddings(files.embeddings("predictor"), model, data.predictor, config.device)
        zt = cached_embeddings(files.embeddings("test"), model, data.test, config.device)
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

    before = reconstruction_l1(model, data.test, device=config.device)
    recon_before = reconstruct(model, data.test, parts.sample, config.device)
    if config.retrain_epochs == 0:
        # No decoder retraining (the quick preset's choice): Table VIII reads the reconstructions as trained.
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
        after = reconstruction_l1(model, data.test, device=config.device)
        recon_after = reconstruct(model, data.test, parts.sample, config.device)
        epochs_run, best_epoch = result.epochs_run, result.best_epoch
    atomic_write_bytes(
        files.reconstructions, lambda f: np.save(f, np.stack([recon_before, recon_after]))
    )
    atomic_write_json(
        files.retrain_result,
        {
            "l1_before": before,
            "l1_after": after,
            "epochs_run": epochs_run,
            "best_epoch": best_epoch,
        },
    )
