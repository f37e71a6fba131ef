"""`run_study`: the whole study, resumable, in the order it runs: every check before the first
file, the data (generated, capped, split), the units that are not finished on an executor, then
the report.

Every finished step leaves a file in its run folder (layout.StudyFiles), written atomically;
a rerun skips what is finished and resumes an interrupted autoencoder from its last epoch
checkpoint, so it ends with the same results as an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import provenance
from .config import ConfigError
from .data import DataError
from .data.lunarlander import check_collection_folder
from .device import resolve_device
from .files import (
    atomic_write_bytes,
    atomic_write_json,
    check_output_folder,
    exclusive_use,
    read_json,
    remove_stale_temporary_files,
)
from .layout import StudyFiles
from .perceptual_networks import describe_weights
from .predictors import Baseline, trivial_baseline
from .report import write_report
from .study.config import StudyConfig
from .study.data import (
    StudyNotes,
    StudyParts,
    data_root,
    needs_generation,
    prepare_data,
    resolve_perceptual_net,
    split_sizes,
)
from .study.executors import LocalExecutor
from .study.unit import EpochHook, UnitWork, pending_units, units

# Progress messages go to the "percae" logger unless a `log` callable is given (the CLI sets the
# level).
LOG = logging.getLogger(__name__)


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
    # Every check before the first file: a refused start leaves `out` as it was.
    config.validate()
    files = StudyFiles(check_output_folder(out))
    if config.root is not None:
        root, results = Path(config.root).resolve(), files.root.resolve()
        if results == root or root in results.parents:
            raise ConfigError(
                f"--out {out} is inside --root {config.root}: the study would read its own results "
                "as data; choose an --out outside the dataset folder"
            )
    net_note, net_fingerprints = resolve_perceptual_net(config, log)
    if files.config.exists():
        # Through StudyConfig, so that settings added since that study began take their defaults.
        conflicts = config.conflicts_with(StudyConfig.load(files.config))
        if conflicts:
            raise ConfigError(
                f"{files.root} holds a study whose finished units other settings would change "
                f"({'; '.join(conflicts)}); use another --out, or its settings (more seeds, latent "
                "sizes or models may be added)"
            )
    if files.provenance.exists():
        schema = read_json(files.provenance, "provenance file").get("schema", 0)
        if not isinstance(schema, int) or schema > provenance.SCHEMA_VERSION:
            raise ConfigError(
                f"{files.root} was written by a newer percae (results schema {schema}); upgrade "
                "percae to resume it"
            )
    executor = executor or LocalExecutor()
    executor.start(config)  # a Ray that cannot be reached, or is too small: refused, no file
    try:
        # The topmost folders this run creates: a refused start removes them, however deep.
        created = [
            _topmost_missing(p) for p in (files.root, data_root(config, files)) if not p.exists()
        ]
        files.root.mkdir(parents=True, exist_ok=True)
        # One run per results folder: a second one on it would do all the work again.
        with exclusive_use(files.root, "--out"):
            work = _prepare(config, files, created, progress, log, on_epoch)
            _record(work, net_note, net_fingerprints)
            todo = pending_units(work.config, files)
            for unit in units(work.config):
                if unit not in todo:
                    log(f"{unit.name}: finished earlier, skipped")
            executor.run(todo, work)
            return write_report(files.root)  # still held: no other run sweeps the report's files
    finally:
        executor.stop()


def _prepare(config, files, created, progress, log, on_epoch) -> UnitWork:
    """The study's data, generated where missing, capped, checked and split; a refusal here
    (caps that leave too few rollouts, say) leaves the places as they were."""
    try:
        if needs_generation(config, files):
            check_collection_folder(
                data_root(config, files), "--root" if config.root else "the study's data folder"
            )
        data = prepare_data(config, files, log, progress)
        parts = StudyParts.split(data, config.seed)
    except (ConfigError, DataError):
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    previous = StudyConfig.load(files.config) if files.config.exists() else None
    config = replace(config, data_fingerprint=data.fingerprint())
    if previous is not None and previous.data_fingerprint not in (None, config.data_fingerprint):
        raise ConfigError(
            f"{files.root} holds a study of other data (fingerprint {previous.data_fingerprint} "
            f"there, {config.data_fingerprint} in {data_root(config, files)} now): the dataset "
            "changed since; use another --out, or restore the data"
        )
    for warning in study_warnings(config, parts):
        log(f"warning: {warning}")
    remove_stale_temporary_files(files.root)
    # Only once the data is known to be usable: a refused start leaves nothing to trip over. A
    # grown study's settings replace those it grew from.
    if previous != config:
        config.save(files.config)
    return UnitWork(config, parts, files, progress, log, on_epoch)


# Below these a study learns little, and says so before it trains.
FEW_STEPS_PER_EPOCH = 50
FEW_IMAGES_PER_CLASS = 10


def study_warnings(config: StudyConfig, parts: StudyParts) -> list[str]:
    """What the data and the settings give too little of: optimizer steps per epoch, and
    images of a class among the predictors' training images."""
    out = []
    images = len(parts.ae_train)
    batch = config.batch_size_for(images)
    if images // batch < FEW_STEPS_PER_EPOCH:
        out.append(
            f"batch size {batch} gives {images // batch} optimizer step(s) per epoch over the "
            f"{images} training images, too few for an autoencoder to learn much in "
            f"{config.train.epochs} epoch(s): lower --batch-size, or raise --epochs"
        )
    if parts.data.task == "classification":
        counts = parts.y_train.sum(0).astype(int)
        if counts.min() < FEW_IMAGES_PER_CLASS:
            out.append(
                f"{int((counts < FEW_IMAGES_PER_CLASS).sum())} class(es) have fewer than "
                f"{FEW_IMAGES_PER_CLASS} of the predictors' training images (as few as "
                f"{counts.min()}): their accuracy rests on a handful of images; add images"
            )
    return out


def _record(work: UnitWork, net_note: str | None, net_fingerprints: dict[str, str]) -> None:
    """What every unit shares, written once: notes, provenance, the baseline, the test images
    the figure shows."""
    config, files, parts, data = work.config, work.files, work.parts, work.parts.data
    StudyNotes(data.notes, net_note, split_sizes(parts)).write_result(files.notes)
    record_provenance(files, config, net_fingerprints)
    by_weights: dict[str, list[str]] = {}  # one mention of each kind of weights
    for net, weights in config.networks().items():
        by_weights.setdefault(describe_weights(net, weights), []).append(net)
    networks = "; ".join(f"{', '.join(nets)} (weights: {w})" for w, nets in by_weights.items())
    work.log(
        f"{config.dataset}: autoencoder {len(parts.ae_train)}/{len(parts.ae_val)} train/val "
        f"images, predictor {len(parts.pred_train)}/{len(parts.pred_val)}, test {len(data.test)}; "
        + (f"perceptual networks {networks}" if networks else "no perceptual network")
        + f"; training seeds {', '.join(map(str, config.training_seeds()))}"
    )
    Baseline(data.task, trivial_baseline(data.task, parts.y_train, parts.y_test)).write_result(
        files.baseline
    )
    atomic_write_bytes(
        files.originals, lambda f: np.save(f, data.test.subset(parts.sample).materialize())
    )


def _topmost_missing(path: Path) -> Path:
    while not path.parent.exists():
        path = path.parent
    return path


def record_provenance(
    files: StudyFiles, config: StudyConfig, net_fingerprints: dict[str, str]
) -> None:
    """provenance.json: one session per distinct (versions, device, networks) that worked on
    this study (a study resumed elsewhere lists both)."""
    session = {
        **provenance.record(resolve_device(config.train.device)),
        "perceptual_net": config.perceptual_net,
        "perceptual_weights": describe_weights(
            config.perceptual_net, config.train.perceptual_weights
        ),
        "perceptual_net_sha256": net_fingerprints.get(config.perceptual_net),
    }
    others = {net: sha for net, sha in net_fingerprints.items() if net != config.perceptual_net}
    if others:  # the networks of the models that name their own
        session["variant_nets_sha256"] = others
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
