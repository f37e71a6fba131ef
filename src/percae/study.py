"""The study end to end: for each model (AE, VAE, P.AE, P.VAE) and latent size, train
the autoencoder, embed the predictor and test parts once, fit the predictor grid,
test the best MLP and linear regressor, and retrain the decoder with pixel loss.

Every finished step leaves a file in RESULTS/runs/<model>_z<z>/, written atomically;
a rerun skips what is finished and resumes an interrupted autoencoder from its last
epoch checkpoint, so it ends with the same results as an uninterrupted run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import ConfigError, JsonConfig, atomic_write_json, check_output_folder
from .data import ImageSet, StudyData, check_image_size, load_study_data, split
from .data.lunarlander import LunarLanderConfig, check_collection_folder, generate_lunarlander
from .embeddings import cached_embeddings, reconstruct, reconstruction_l1
from .loss import (
    OFFLINE_PERCEPTUAL_NETWORK,
    PixelLoss,
    build_loss,
    build_perceptual_network,
    check_perceptual_net_name,
    default_perceptual_net,
    describe_weights,
)
from .model import AutoencoderConfig, build_autoencoder, load_autoencoder
from .predictors import PredictorConfig, fit_predictor_grid, select_best
from .training import RESULT, TrainConfig, resolve_device, train_autoencoder

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
    for model, (kind, loss_name) in MODEL_VARIANTS.items() if loss_name == "perceptual"
}


@dataclass
class StudyConfig(JsonConfig):
    dataset: str = "lunarlander"
    root: str | None = None  # the data; for LunarLander the collection (generated if missing)
    preset: str = "paper"
    z_sizes: tuple[int, ...] = (32, 64, 128, 256)
    models: tuple[str, ...] = ("AE", "VAE", "P.AE", "P.VAE")
    ae_epochs: int = 50
    predictor_epochs: int = 500
    retrain_epochs: int = 50
    batch_size: int = 512  # autoencoder training and decoder retraining
    predictor_batch_size: int = 512
    kl_weight: float = 0.01  # gamma of every VAE; the paper's 0.01
    perceptual_net: str | None = None  # None: the paper's AlexNet
    perceptual_weights: str | None = None
    rollouts: int = 1400  # LunarLander collection size, when it is generated
    image_size: int | None = None  # None: the dataset's own (64 px; STL-10 96 px); folders are resized to it
    steps: int = 150
    max_autoencoder_images: int | None = None  # subsample big sets (quick presets)
    max_predictor_images: int | None = None
    max_test_images: int | None = None
    seed: int = 0  # the data's: collection, subsampling and splits; also the first training seed
    # Training seeds (model initialisation, batch order, predictor initialisation): each
    # (model, z) is trained once per seed, on the same data. None: (seed,).
    seeds: tuple[int, ...] | None = None
    device: str = "auto"

    def validate(self) -> None:
        self.check_types()
        unknown = [m for m in self.models if m not in MODEL_VARIANTS]
        if unknown:
            raise ConfigError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_VARIANTS)}")
        if not self.z_sizes or any(z < 1 for z in self.z_sizes):
            raise ConfigError(f"--z needs positive latent sizes, got {self.z_sizes}")
        if self.ae_epochs < 1 or self.predictor_epochs < 1 or self.retrain_epochs < 0:
            raise ConfigError(
                f"--epochs and --predictor-epochs must be at least 1 and --retrain-epochs at least 0 (0: no decoder "
                f"retraining), got {self.ae_epochs}, {self.predictor_epochs} and {self.retrain_epochs}"
            )
        if not math.isfinite(self.kl_weight) or self.kl_weight < 0:
            raise ConfigError(f"--kl-weight must be a finite number, 0 or more, got {self.kl_weight}")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)
                                       or any(s < 0 for s in self.seeds)):
            raise ConfigError(f"--seeds needs distinct non-negative seeds, got {self.seeds}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be 0 or more, got {self.seed}")
        if self.batch_size < 2 or self.predictor_batch_size < 1:
            raise ConfigError(f"batch sizes must be at least 2 (autoencoders) and 1 (predictors), got "
                              f"{self.batch_size} and {self.predictor_batch_size}")
        for option in ("max_autoencoder_images", "max_predictor_images", "max_test_images"):
            if getattr(self, option) is not None and getattr(self, option) < 1:
                raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(self, option)}")
        if self.image_size is not None:
            check_image_size(self.image_size, ConfigError)
        if self.dataset == "lunarlander":
            self.lunarlander_config().validate()
        elif self.root is None:
            raise ConfigError(f"--root DIR is needed for {self.dataset}: the folder that holds its files")
        elif not Path(self.root).is_dir():
            raise ConfigError(f"--root {self.root} is not a folder; give the folder that holds the {self.dataset} files")
        resolve_device(self.device)

    def lunarlander_config(self) -> LunarLanderConfig:
        """The settings of the LunarLander collection this study generates when it is missing."""
        return LunarLanderConfig(rollouts=self.rollouts, steps=self.steps, image_size=self.image_size or 64,
                                 seed=self.seed)

    def training_seeds(self) -> tuple[int, ...]:
        return self.seeds if self.seeds is not None else (self.seed,)


PRESETS: dict[str, dict[str, dict]] = {
    "lunarlander": {
        "paper": dict(z_sizes=(32, 64, 128, 256), rollouts=1400, steps=150),
        # Sized by measurement to show the paper's effect on 2 CPU cores in 10 minutes
        # (docs/results/quick-preset): batch 16 gives the autoencoders enough steps in 2 epochs; no
        # decoder retraining (Table VIII reads the reconstructions as trained) to leave time for 3 seeds.
        "quick": dict(
            z_sizes=(32,), models=("AE", "P.AE"), rollouts=200, steps=150, ae_epochs=2, batch_size=16,
            predictor_epochs=300, retrain_epochs=0, seed_count=3,
        ),
    },
    "stl10": {
        "paper": dict(z_sizes=(64, 128, 256, 512)),
        "quick": dict(
            z_sizes=(64,), ae_epochs=2, predictor_epochs=200, retrain_epochs=1,
            max_autoencoder_images=2000, max_predictor_images=2000, max_test_images=2000,
        ),
    },
    "svhn": {
        "paper": dict(z_sizes=(32, 64, 128)),
        "quick": dict(
            z_sizes=(32,), ae_epochs=3, predictor_epochs=200, retrain_epochs=1,
            max_autoencoder_images=4000, max_predictor_images=4000, max_test_images=2000,
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


def resolve_perceptual_net(config: StudyConfig, log: Callable[[str], None] = print) -> tuple[str, str | None]:
    """(network name, note) for this study; the quick preset falls back to the offline
    network where AlexNet's weights cannot be had, the paper preset refuses."""
    if config.perceptual_net is not None:
        net, note = config.perceptual_net, None
    else:
        net, note = default_perceptual_net(config.perceptual_weights)
        if note is not None and config.preset != "quick":
            raise ConfigError(
                "the paper preset needs the paper's perceptual network (ImageNet AlexNet), whose weights are "
                "neither cached nor given: run once with internet, pass --perceptual-weights PATH, or name "
                f"another network explicitly with --perceptual-net (e.g. {OFFLINE_PERCEPTUAL_NETWORK})"
            )
    check_perceptual_net_name(net)
    if any(MODEL_VARIANTS[m][1] == "perceptual" for m in config.models):
        build_perceptual_network(net, config.perceptual_weights)  # a bad layer or weights file refused before any work
    if note:
        log(f"note: {note}")
    return net, note


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


def data_root(config: StudyConfig, out: Path) -> Path:
    """Where the study's data is: --root, or for LunarLander by default RESULTS/data."""
    return Path(config.root) if config.root is not None else out / "data"


def needs_generation(config: StudyConfig, out: Path) -> bool:
    return config.dataset == "lunarlander" and not (data_root(config, out) / "meta.json").exists()


def prepare_data(config: StudyConfig, out: Path, log: Callable[[str], None] = print, progress: bool = True) -> StudyData:
    """Load (LunarLander: generate if missing) the dataset, apply the preset's size caps and
    refuse data no study can use (`StudyData.validate`)."""
    root = data_root(config, out)
    if needs_generation(config, out):
        log(f"generating the LunarLander collection ({config.rollouts} rollouts x {config.steps} steps) in {root}")
        generate_lunarlander(root, config.lunarlander_config(), progress=progress)
    data = load_study_data(config.dataset, root, seed=config.seed, image_size=config.image_size)
    data.autoencoder = _limit(data.autoencoder, config.max_autoencoder_images, config.seed)
    data.predictor = _limit(data.predictor, config.max_predictor_images, config.seed + 1)
    data.test = _limit(data.test, config.max_test_images, config.seed + 2)
    data.validate(root)
    return data


def targets_for(data: StudyData, images: ImageSet) -> np.ndarray:
    y = images.selected_targets()
    if data.task == "classification":
        return np.eye(data.num_classes or int(y.max()) + 1, dtype=np.float32)[y]
    return y.astype(np.float32)


def test_metric(task: str, prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean Euclidean distance in pixels (position), or accuracy in [0, 1] (classification)."""
    if task == "classification":
        return float((prediction.argmax(1) == truth.argmax(1)).mean())
    return float(np.linalg.norm(prediction - truth, axis=1).mean())


def trivial_baseline(task: str, train_y: np.ndarray, test_y: np.ndarray) -> float:
    """Predict the training mean position, or the most frequent training class."""
    if task == "classification":
        guess = np.zeros_like(test_y)
        guess[:, train_y.sum(0).argmax()] = 1
        return test_metric(task, guess, test_y)
    return test_metric(task, np.broadcast_to(train_y.mean(0), test_y.shape), test_y)


def run_name(model: str, z: int, seed: int) -> str:
    """The run folder of one (model, latent size, training seed) under RESULTS/runs/."""
    return f"{model}_z{z}_seed{seed}"


def parse_seeds(text: str, first: int = 0) -> tuple[int, ...]:
    """`--seeds`: a count N (seeds first, first+1, ..., first+N-1) or a comma-separated list."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--seeds takes a count (3) or comma-separated seeds (0,1,2), got {text!r}") from None
    if len(values) == 1:
        if values[0] < 1:
            raise ConfigError(f"--seeds needs a count of at least 1, got {values[0]}")
        return tuple(range(first, first + values[0]))
    return values


def run_study(config: StudyConfig, out: str | os.PathLike, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the whole study into `out`; returns summary.json's content."""
    from .report import write_report

    # Every check before the first file: a refused start leaves `out` as it was.
    config.validate()
    out = check_output_folder(out)
    net, net_note = resolve_perceptual_net(config, log)
    config = replace(config, perceptual_net=net)
    saved = out / "study_config.json"
    if saved.exists():
        # Through StudyConfig, so that settings added since that study began take their defaults.
        previous, current = StudyConfig.load(saved).to_dict(), config.to_dict()
        if previous != current:
            diff = [k for k in current if previous.get(k) != current[k]]
            raise ConfigError(
                f"{out} holds a study with other settings ({', '.join(diff)}); "
                "use another --out, or the same settings to resume it"
            )
    if needs_generation(config, out):
        # Settings already checked: generation cannot refuse them, and a killed one leaves no collection.
        check_collection_folder(data_root(config, out))
        out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(config, out, log, progress)
    out.mkdir(parents=True, exist_ok=True)
    if not saved.exists():  # only once the data is known to be usable: a refused start leaves nothing to trip over
        config.save(saved)
    if net_note:
        atomic_write_json(out / "notes.json", {"perceptual_net": net_note, "data": data.notes})
    else:
        atomic_write_json(out / "notes.json", {"data": data.notes})
    ae_train, ae_val = split(data.autoencoder, 0.2, config.seed)
    pred_train, pred_val = split(data.predictor, 0.2, config.seed)
    log(
        f"{config.dataset}: autoencoder {len(ae_train)}/{len(ae_val)} train/val images, "
        f"predictor {len(pred_train)}/{len(pred_val)}, test {len(data.test)}; perceptual network {net} "
        f"(weights: {describe_weights(net, config.perceptual_weights)}); training seeds "
        f"{', '.join(map(str, config.training_seeds()))}"
    )
    y_train, y_val, y_test = (targets_for(data, s) for s in (pred_train, pred_val, data.test))
    baseline = trivial_baseline(data.task, y_train, y_test)
    atomic_write_json(out / "baseline.json", {"task": data.task, "baseline": baseline})
    sample = np.linspace(0, len(data.test) - 1, num=min(6, len(data.test))).astype(int)
    np.save(out / "originals.npy", data.test.subset(sample).materialize())

    for seed in config.training_seeds():
        for z in config.z_sizes:
            for model_name in config.models:
                run_one(config, model_name, z, seed, data, (ae_train, ae_val), (pred_train, pred_val),
                        (y_train, y_val, y_test), sample, out / "runs" / run_name(model_name, z, seed), progress, log)
    return write_report(out)


def run_one(config, model_name, z, seed, data, ae_parts, pred_parts, targets, sample, run_dir: Path, progress,
            log) -> None:
    kind, loss_name = MODEL_VARIANTS[model_name]
    name = run_name(model_name, z, seed)
    ae_train, ae_val = ae_parts
    pred_train, pred_val = pred_parts
    y_train, y_val, y_test = targets
    if (run_dir / "retrain" / "retrain.json").exists():
        log(f"{name}: finished earlier, skipped")
        return
    train_config = TrainConfig(
        loss=loss_name, perceptual_net=config.perceptual_net, perceptual_weights=config.perceptual_weights,
        kl_weight=config.kl_weight, epochs=config.ae_epochs, batch_size=config.batch_size, seed=seed,
        device=config.device,
    )
    if (run_dir / RESULT).exists():
        model = load_autoencoder(run_dir)
    else:
        log(f"{name}: training the autoencoder ({loss_name} loss)")
        model = build_autoencoder(AutoencoderConfig(kind, z, data.autoencoder.image_size), seed=seed)
        loss_fn = build_loss(loss_name, config.perceptual_net, config.perceptual_weights)
        train_autoencoder(model, loss_fn, ae_train, ae_val, train_config, run_dir=run_dir, progress=progress, log=log)

    if not (run_dir / "predictors.json").exists():
        log(f"{name}: embedding and fitting the predictor grid")
        zp = cached_embeddings(run_dir / "embeddings_predictor.npy", model, data.predictor, config.device)
        zt = cached_embeddings(run_dir / "embeddings_test.npy", model, data.test, config.device)
        # Positions of pred_train/pred_val inside data.predictor, to index the embeddings.
        where = {int(i): k for k, i in enumerate(data.predictor.indices)}
        zt_train = zp[[where[int(i)] for i in pred_train.indices]]
        zt_val = zp[[where[int(i)] for i in pred_val.indices]]
        fit_predictors(data.task, zt_train, y_train, zt_val, y_val, zt, y_test,
                       PredictorConfig(epochs=config.predictor_epochs, batch_size=config.predictor_batch_size,
                                       seed=seed, device=config.device),
                       run_dir)

    retrain_dir = run_dir / "retrain"
    before = reconstruction_l1(model, data.test, device=config.device)
    recon_before = reconstruct(model, data.test, sample, config.device)
    if config.retrain_epochs == 0:
        # No decoder retraining (the quick preset's choice): Table VIII reads the reconstructions as trained.
        after, recon_after, epochs_run, best_epoch = before, recon_before, 0, 0
    else:
        log(f"{name}: retraining the decoder with pixel loss")
        retrain_config = replace(train_config, loss="pixel", epochs=config.retrain_epochs)
        result = train_autoencoder(model, PixelLoss(), ae_train, ae_val, retrain_config, run_dir=retrain_dir,
                                   progress=progress, log=log, freeze_encoder=True)
        after = reconstruction_l1(model, data.test, device=config.device)
        recon_after = reconstruct(model, data.test, sample, config.device)
        epochs_run, best_epoch = result.epochs_run, result.best_epoch
    retrain_dir.mkdir(parents=True, exist_ok=True)
    np.save(retrain_dir / "reconstructions.npy", np.stack([recon_before, recon_after]))
    atomic_write_json(retrain_dir / "retrain.json", {
        "l1_before": before, "l1_after": after, "epochs_run": epochs_run, "best_epoch": best_epoch,
    })


def fit_predictors(task, x_train, y_train, x_val, y_val, x_test, y_test, config: PredictorConfig, run_dir: Path) -> dict:
    """Fit the grid, test the best MLP and the best linear regressor once, save it all."""
    if task == "position":
        # Standardised targets keep every predictor's output scale near 1; metrics are in pixels.
        mean, std = y_train.mean(0), y_train.std(0) + 1e-6
    else:
        mean, std = np.zeros(y_train.shape[1], np.float32), np.ones(y_train.shape[1], np.float32)
    t0 = time.perf_counter()
    fitted = fit_predictor_grid(x_train, (y_train - mean) / std, x_val, (y_val - mean) / std, config=config)
    seconds = time.perf_counter() - t0
    selected = {}
    for kind in ("mlp", "linear"):
        best = select_best(fitted, kind)
        prediction = best.predict(x_test) * std + mean
        selected[kind] = {"predictor": best.spec.name, "val_loss": best.val_loss, "test_metric": test_metric(task, prediction, y_test)}
        torch.save(best.state_dict(), run_dir / f"predictor_{kind}.pt")
    record = {
        "task": task,
        "grid_seconds": seconds,
        "count": len(fitted),
        "selected": selected,
        "predictors": [
            {"predictor": f.spec.name, "kind": f.spec.kind, **f.spec.to_dict(), "val_loss": f.val_loss,
             "best_epoch": f.best_epoch, "epochs_run": f.epochs_run}
            for f in fitted
        ],
        "config": config.to_dict(),
    }
    atomic_write_json(run_dir / "predictors.json", record)
    return record
