"""What runs in a Ray worker (a unit in a folder of its own, its changes sent after each epoch)
and what travels between it and the driver (the study's data once, a run folder's files)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data import ImageSet
from ..feature_cache import shared_gpu_megabytes
from ..files import atomic_write_bytes
from ..layout import RunFiles, run_name
from ..study.config import StudyConfig
from ..study.data import StudyParts
from ..study.unit import Unit, UnitWork
from .unit_folders import unit_folder


def in_memory(parts: StudyParts) -> StudyParts:
    """`parts` with its memory-mapped images as plain arrays: Ray stores a plain array once and
    lets every task on a node read it in place, where a memmap would be copied into each."""
    views: dict[int, np.ndarray] = {}

    def plain(images: ImageSet) -> ImageSet:
        array = views.setdefault(id(images.images), np.asarray(images.images))
        return replace(images, images=array)

    data = parts.data
    data = replace(
        data,
        autoencoder=plain(data.autoencoder),
        predictor=plain(data.predictor),
        test=plain(data.test),
    )
    return replace(parts, data=data, ae_train=plain(parts.ae_train), ae_val=plain(parts.ae_val))


class Mailbox:
    """The per-epoch updates of all tasks, in the order each task sent them, until the driver takes
    them."""

    def __init__(self):
        self.items: list = []

    def put(self, item) -> None:
        self.items.append(item)

    def take(self) -> list:
        items, self.items = self.items, []
        return items


def run_unit(
    config_dict: dict, unit: Unit, parts: StudyParts, existing: dict[str, bytes], updates
) -> dict[str, bytes]:
    """One unit in a temporary folder of the worker; after each epoch, what changed in it goes
    to the driver through `updates`; returns its run folder's files (and its log)."""
    import ray

    config = StudyConfig.from_dict(config_dict)
    share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0)
    if 0 < share < 1 and config.train.feature_cache_mb is None:
        # A fraction of a GPU: its own budget (where it computes: a run resumes under any).
        import torch

        budget = shared_gpu_megabytes(share, torch.device("cuda", 0))
        config = replace(config, train=replace(config.train, feature_cache_mb=budget))
    lines: list[str] = []
    with unit_folder() as tmp:
        run = RunFiles(tmp / run_name(unit.model, unit.z, unit.seed))  # its log names it
        write_folder(run, existing)
        sent = {name: hash(data) for name, data in existing.items()}

        def send_changes(phase: str, row: dict) -> None:
            changed = {
                name: data
                for name, data in read_folder(run.root).items()
                if sent.get(name) != hash(data)
            }
            sent.update({name: hash(data) for name, data in changed.items()})
            # Sent without waiting: a task blocked in Ray hands back its CPUs, and Ray would start
            # another unit on them (two trainings on CPUs meant for one).
            updates.put.remote((unit, changed, phase, row))

        UnitWork(config, parts, progress=False)(unit, run, lines.append, send_changes)
        produced = read_folder(run.root)
    produced[run.log.name] = ("\n".join(lines) + "\n").encode()
    return produced


def read_folder(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file() and not path.name.startswith("."):
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def write_folder(run: RunFiles, produced: dict[str, bytes], complete: bool = False) -> None:
    """Write a unit's files into `run`, each atomically; the files that mark a step finished
    (training, grid, whole unit) last, so that a driver killed while writing leaves the unit
    unfinished and it resumes from what was written. `complete`: `produced` is the whole
    finished folder, and what else the folder holds (the checkpoints sent while it ran) goes."""
    markers = [
        p.relative_to(run.root).as_posix()
        for p in (run.train_result, run.predictors, run.retrain_result)
    ]
    for name in sorted(produced, key=lambda n: markers.index(n) + 1 if n in markers else 0):
        atomic_write_bytes(run.root / name, lambda f, data=produced[name]: f.write(data))
    if complete:
        for name in set(read_folder(run.root)) - set(produced):
            (run.root / name).unlink()
