"""`probe_embeddings`: the probe itself, as a study evaluates its embeddings."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from ..arrays import class_labels, group_ids, real_array
from ..config import ConfigError
from ..data import split_by_group
from ..files import (
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
    exclusive_use,
    read_json,
    remove_stale_temporary_files,
)
from ..layout import ProbeFiles
from ..predictors import PredictorConfig, PredictorRecord, fit_predictors, trivial_baseline
from ..statistics import mean_interval, paired_ratio
from ..variants import comparisons
from .checks import METRICS, check_memory, check_settings, fingerprint, targets_of
from .tables import probe_tables

LOG = logging.getLogger(__name__)


def probe_embeddings(
    embeddings: dict[str, np.ndarray],
    targets: np.ndarray,
    out,
    task: str = "position",
    groups: np.ndarray | None = None,
    test_embeddings: dict[str, np.ndarray] | None = None,
    test_targets: np.ndarray | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    split_seed: int = 0,
    config: PredictorConfig | None = None,
    replace_finished: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = LOG.info,
) -> dict:
    """Evaluate each named embedding of the same images; write `out`/probe.json, tables.md and
    each (name, seed)'s predictors under runs/; return probe.json's content.

    Without `test_embeddings`, 20% of the images (by group where `groups` are given: no group on
    two sides) are the test set; of the rest 20% validate. `seeds` seed the predictors. A probe
    that was interrupted resumes; a finished one in `out` is redone only with
    `replace_finished`."""
    task, seeds, config = check_settings(
        task, seeds, split_seed, config, embeddings, test_embeddings, test_targets
    )
    n = len(targets) if np.ndim(targets) else 0
    classes = None
    if task == "classification":
        labels = class_labels("--targets", targets)
        test_labels = None if test_targets is None else class_labels("--test-targets", test_targets)
        classes = np.unique(
            labels if test_labels is None else np.concatenate([labels, test_labels])
        )
    y = targets_of("--targets", targets, task, classes)
    n = len(y)
    x = {name: real_array(f"--embeddings {name}", z, rows=n) for name, z in embeddings.items()}
    groups = np.arange(n) if groups is None else group_ids("--groups", groups, n)
    if test_embeddings is not None:
        y_test = targets_of("--test-targets", test_targets, task, classes)
        if y_test.shape[1] != y.shape[1]:
            raise ConfigError(
                f"--test-targets has {y_test.shape[1]} value(s) per row, --targets "
                f"{y.shape[1]}; they must be of one kind"
            )
        x_test = {}
        for name, z in test_embeddings.items():
            x_test[name] = real_array(f"--test-embeddings {name}", z, rows=len(y_test))
            if x_test[name].shape[1] != x[name].shape[1]:
                raise ConfigError(
                    f"--test-embeddings {name} has {x_test[name].shape[1]} dimensions, its "
                    f"--embeddings {x[name].shape[1]}; they must come from one model"
                )
    distinct = len(np.unique(groups))
    needed = 2 if test_embeddings is not None else 3
    if distinct < needed:
        raise ConfigError(
            f"the embeddings come in {distinct} group(s); a probe splits by group into "
            + ("training and validation" if needed == 2 else "training, validation and test")
            + f", so it needs at least {needed}: give more images, or --groups with more groups"
        )
    check_memory(x, y)
    files = ProbeFiles(check_output_folder(out))
    settings = {
        "task": task,
        "seeds": list(seeds),
        "split_seed": split_seed,
        "predictor_config": config.to_dict(),
        "data": {
            name: fingerprint(z, y, groups, None if test_embeddings is None else x_test[name])
            for name, z in x.items()
        },
    }
    fresh = _claim(files, settings, replace_finished)
    if test_embeddings is None:
        rest, test = split_by_group(groups, 0.2, split_seed)
        y_test, x_test = y[test], {name: z[test] for name, z in x.items()}
    else:
        rest = np.arange(n)
    train, val = (rest[p] for p in split_by_group(groups[rest], 0.2, split_seed))
    files.root.mkdir(parents=True, exist_ok=True)
    with exclusive_use(files.root, "--out"):
        if fresh:
            for leftover in (files.result, files.tables):
                leftover.unlink(missing_ok=True)
            shutil.rmtree(files.runs, ignore_errors=True)
        remove_stale_temporary_files(files.root)
        atomic_write_json(files.settings, settings)
        per_seed = _fit_all(
            x, y, x_test, y_test, train, val, task, seeds, config, files, progress, log
        )
        result = _summary(
            per_seed,
            task,
            trivial_baseline(task, y[train], y_test),
            list(seeds),
            {
                "train": len(train),
                "validation": len(val),
                "test": len(y_test),
                "split_seed": split_seed,
                "groups": distinct,
            },
            config,
        )
        atomic_write_text(files.tables, probe_tables(result))
        atomic_write_json(files.result, result)  # last: the probe is finished
    return result


def _claim(files: ProbeFiles, settings: dict, replace_finished: bool) -> bool:
    """Whether the probe starts afresh in `files.root` (True) or resumes an interrupted one of
    these settings (False); any other folder is refused, naming why."""
    root = files.root
    if not root.is_dir() or not any(root.iterdir()):
        return True
    if not files.settings.exists():
        raise ConfigError(
            f"--out {root} is a folder of other files, not a probe's; choose a new folder"
        )
    if files.result.exists():
        if not replace_finished:
            raise ConfigError(
                f"--out {root} holds a finished probe; add --replace to redo it there, or choose "
                "another --out"
            )
        return True
    saved = read_json(files.settings, "probe settings")
    if saved == settings:
        return False
    if replace_finished:
        return True
    differ = sorted(k for k in settings if saved.get(k) != settings[k])
    raise ConfigError(
        f"--out {root} holds an interrupted probe of other {', '.join(differ)}; rerun its own "
        "command to resume it, add --replace to start this one there, or choose another --out"
    )


def _fit_all(x, y, x_test, y_test, train, val, task, seeds, config, files, progress, log):
    """Every (embeddings, seed)'s grid, those a finished predictors.json holds read back."""
    per_seed: dict[str, dict[str, list[float]]] = {name: {"mlp": [], "linear": []} for name in x}
    todo = [(seed, name) for seed in seeds for name in x]
    started, done = time.perf_counter(), 0
    for i, (seed, name) in enumerate(todo, start=1):
        run = files.run(name, seed)
        remove_stale_temporary_files(run.root)  # what a killed probe left half-written
        if run.predictors.exists():
            record = PredictorRecord.read_result(run.predictors)
        else:
            eta = (time.perf_counter() - started) / done * (len(todo) - i + 1) if done else None
            log(
                f"probe: {name}, predictor seed {seed} ({i} of {len(todo)})"
                + (f", about {eta / 60:.1f} min left" if eta is not None else "")
            )
            record = fit_predictors(
                task,
                x[name][train],
                y[train],
                x[name][val],
                y[val],
                x_test[name],
                y_test,
                replace(config, seed=seed),
                run,
                progress=progress,
            )
            done += 1
        for kind in ("mlp", "linear"):
            per_seed[name][kind].append(getattr(record.selected, kind).test_metric)
    return per_seed


def _summary(
    per_seed: dict,
    task: str,
    baseline: float,
    seeds: list[int],
    sizes: dict,
    config: PredictorConfig,
) -> dict:
    names = list(per_seed)
    lower = task == "position"
    result = {
        "task": task,
        "metric": METRICS[task],
        "baseline": baseline,
        "seeds": seeds,
        "sizes": sizes,
        "predictor_config": config.to_dict(),
        "embeddings": {},
        "comparisons": [],
    }
    bounds = (0.0, None) if lower else (0.0, 1.0)
    for name in names:
        result["embeddings"][name] = {}
        for kind, values in per_seed[name].items():
            mean, half = mean_interval(values)
            result["embeddings"][name][kind] = {"mean": mean, "ci95": half, "per_seed": values}
            result["embeddings"][name][kind]["bounds"] = list(bounds)
    for name, reference in comparison_pairs(names):  # seed by seed
        for kind in ("mlp", "linear"):
            compared = paired_ratio(
                per_seed[name][kind], per_seed[reference][kind], name, reference, lower
            )
            if compared is not None:
                result["comparisons"].append(
                    {"kind": kind, "embeddings": name, "reference": reference, **compared}
                )
    return result


def comparison_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Embeddings named as a study's models (AE, P.AE, AE[ssim], ...): each against the
    pixel-wise model of its kind, as a study compares them; any other names: each against the
    first."""
    try:
        pairs = comparisons(names)
    except ConfigError:
        pairs = []
    return pairs or [(name, names[0]) for name in names[1:]]
