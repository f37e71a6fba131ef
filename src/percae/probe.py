"""The paper's evaluation for any embeddings (`percae probe`): leak-free splits by group, the
38-predictor grid with selection on validation loss, the best MLP and linear predictor
tested once, the trivial baseline, 95% intervals over predictor seeds, and several embeddings
of the same images compared by their paired ratio, as a study compares its models.

As strict as a study: every setting and array is checked before the first file (and what the
grid would take of memory), the probe's settings are written first so that an interrupted
probe resumes with the same command, a finished one is replaced only when asked, and its
folder is held while it runs. The splits are those a study makes of its predictor part
(`data.split_by_group`, 20% for validation), so a study's saved embeddings give that study's
numbers exactly; the tasks and metrics are the study's ("position": mean Euclidean distance,
in the targets' units; "classification": accuracy)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from .arrays import class_labels, group_ids, real_array
from .config import MAX_SEED, ConfigError
from .data import split_by_group
from .files import (
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
    exclusive_use,
    read_json,
    remove_stale_temporary_files,
)
from .layout import ProbeFiles
from .predictors import (
    PredictorConfig,
    PredictorRecord,
    fit_predictors,
    grid_memory_bytes,
    trivial_baseline,
)
from .statistics import mean_interval, paired_ratio
from .variants import comparisons

LOG = logging.getLogger(__name__)

# The study's task names; "regression" is the earlier name of "position".
TASKS = ("position", "classification")
ALIASES = {"regression": "position"}
METRICS = {"position": "pixel_distance", "classification": "accuracy"}


def _settings_checked(task, seeds, split_seed, config, embeddings, test_embeddings, test_targets):
    task = ALIASES.get(task, task)
    if task not in TASKS:
        raise ConfigError(f"--task: unknown task {task!r}; choose position or classification")
    seeds = tuple(seeds)
    if not seeds or not all(isinstance(s, int) and 0 <= s <= MAX_SEED for s in seeds):
        raise ConfigError(f"--seeds needs non-negative integer seeds, got {list(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"--seeds names a seed twice ({list(seeds)}): a repeated seed would narrow the "
            "interval with a copy; give distinct seeds"
        )
    if not isinstance(split_seed, int) or not 0 <= split_seed <= MAX_SEED:
        raise ConfigError(f"--split-seed must be between 0 and {MAX_SEED}, got {split_seed}")
    config = config or PredictorConfig()
    config.validate()
    if not embeddings:
        raise ConfigError("give at least one --embeddings file")
    for name in embeddings:
        if not name or "/" in name or name.startswith(".") or len(name) > 100:
            raise ConfigError(f"embeddings name {name!r} cannot name a folder; rename the file")
    if test_targets is not None and test_embeddings is None:
        raise ConfigError("--test-targets needs --test-embeddings (one for each --embeddings)")
    if test_embeddings is not None:
        if test_targets is None:
            raise ConfigError("--test-embeddings needs --test-targets, the test set's targets")
        if set(test_embeddings) != set(embeddings):
            raise ConfigError(
                "--test-embeddings: give one for each --embeddings, in the same order"
            )
    return task, seeds, config


def _targets(what: str, y, task: str, classes=None, rows=None) -> np.ndarray:
    if task == "classification":
        labels = class_labels(what, y, rows)
        return (labels[:, None] == classes[None, :]).astype(np.float32)  # one-hot, as a study's
    y = real_array(what, y, dims=(1, 2), rows=rows)
    return y.reshape(len(y), -1)


def _fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(repr((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


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
    task, seeds, config = _settings_checked(
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
    y = _targets("--targets", targets, task, classes)
    n = len(y)
    x = {name: real_array(f"--embeddings {name}", z, rows=n) for name, z in embeddings.items()}
    groups = np.arange(n) if groups is None else group_ids("--groups", groups, n)
    if test_embeddings is not None:
        y_test = _targets("--test-targets", test_targets, task, classes)
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
    _check_memory(x, y)
    files = ProbeFiles(check_output_folder(out))
    settings = {
        "task": task,
        "seeds": list(seeds),
        "split_seed": split_seed,
        "predictor_config": config.to_dict(),
        "data": {
            name: _fingerprint(z, y, groups, None if test_embeddings is None else x_test[name])
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


def _check_memory(x: dict, y: np.ndarray) -> None:
    """Refuse a grid that would not fit in the memory this machine has free (Linux)."""
    try:
        with open("/proc/meminfo") as f:
            free = next(
                int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable")
            )
    except (OSError, StopIteration, ValueError):
        return
    widest = max(z.shape[1] for z in x.values())
    need = grid_memory_bytes(len(y), widest, y.shape[1])
    if need > free:
        raise ConfigError(
            f"the predictor grid on {widest}-dimensional embeddings needs about {need / 2**30:.1f} "
            f"GB, more than the {free / 2**30:.1f} GB this machine has free; reduce their "
            "dimension (PCA, say) or use a machine with more memory"
        )


def _fit_all(x, y, x_test, y_test, train, val, task, seeds, config, files, progress, log):
    """Every (embeddings, seed)'s grid, those a finished predictors.json holds read back."""
    per_seed: dict[str, dict[str, list[float]]] = {name: {"mlp": [], "linear": []} for name in x}
    todo = [(seed, name) for seed in seeds for name in x]
    started, done = time.perf_counter(), 0
    for i, (seed, name) in enumerate(todo, start=1):
        run = files.run(name, seed)
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


def probe_tables(result: dict) -> str:
    from .statistics import interval_text, ratio_text, seed_note

    accuracy = result["metric"] == "accuracy"

    def show(v):
        return f"{100 * v:.1f}%" if accuracy else f"{v:.4g}"

    what = "accuracy" if accuracy else "mean Euclidean distance (the targets' units)"
    out = [
        "# percae probe",
        "",
        f"Task: {result['task']}; metric: {what} ({'higher' if accuracy else 'lower'} is "
        f"better); predictor seeds {', '.join(map(str, result['seeds']))}; "
        f"{result['sizes']['train']} / {result['sizes']['validation']} / "
        f"{result['sizes']['test']} train / validation / test images in "
        f"{result['sizes']['groups']} groups, split by group.",
        "",
        "| embeddings | best MLP | best linear |",
        "|---|---|---|",
    ]
    for name, kinds in result["embeddings"].items():
        cells = [
            interval_text(k["mean"], k["ci95"], show, *k.get("bounds", (None, None)))
            for k in kinds.values()
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append(f"| trivial baseline | {show(result['baseline'])} | {show(result['baseline'])} |")
    out += [
        "",
        "Mean ± half-width of the 95% interval (Student t) over the predictor seeds (where it "
        "would leave the metric's range, the interval itself, cut there); each predictor is "
        "selected on validation loss and tested once.",
    ]
    note = seed_note(len(result["seeds"]), "--seeds")
    if note:
        out += ["", note]
    if result["comparisons"]:
        out += ["", "## Ratios", ""]
        for c in result["comparisons"]:
            out.append(
                f"- {'MLP' if c['kind'] == 'mlp' else 'Linear'}: {c['embeddings']} / "
                f"{c['reference']} = {ratio_text(c)}: {c['verdict']}"
            )
    return "\n".join(out) + "\n"


def read_embeddings(path) -> tuple[str, np.ndarray, dict | None]:
    """(name, embeddings, what `percae encode` recorded of them) of a .npy file (its stem, no
    record) or of a folder `percae encode --out DIR` wrote (its name, encoding.json)."""
    from .arrays import load_array
    from .layout import EncodedFiles

    path = Path(path)
    if path.is_dir():
        files = EncodedFiles(path)
        if not files.record.exists():
            raise ConfigError(
                f"--embeddings {path} is a folder, but not one `percae encode --out` wrote (no "
                f"{files.record.name}); give its .npy file, or encode into a new folder"
            )
        return path.name, load_array(files.embeddings, "--embeddings"), read_json(files.record)
    return path.stem, load_array(path, "--embeddings"), None


def probe_files(
    embeddings: list,
    out,
    targets=None,
    groups=None,
    test_embeddings: list = (),
    test_targets=None,
    task: str | None = None,
    log: Callable[[str], None] = LOG.info,
    **options,
) -> dict:
    """`percae probe` from its files: each --embeddings a .npy file or a folder `percae encode`
    wrote (its targets and groups then need not be given); warns where the embeddings are of
    the images the autoencoder trained on."""
    from .arrays import load_array
    from .layout import EncodedFiles

    read = [read_embeddings(p) for p in embeddings]
    names = [name for name, _, _ in read]
    if len(set(names)) != len(names):
        raise ConfigError(f"--embeddings need distinct names (theirs: {', '.join(names)})")
    if test_embeddings and len(test_embeddings) != len(embeddings):
        raise ConfigError("--test-embeddings: give one for each --embeddings, in the same order")
    records = [(p, r) for p, (_, _, r) in zip(embeddings, read) if r is not None]

    def from_folders(what: str, given_path):
        if given_path is not None:
            return load_array(given_path, f"--{what}")
        found = [EncodedFiles(p) for p, _ in records]
        arrays = [
            load_array(getattr(f, what), f"--{what}") for f in found if getattr(f, what).exists()
        ]
        for other in arrays[1:]:
            if not np.array_equal(other, arrays[0]):
                raise ConfigError(
                    f"the --embeddings folders hold different {what}: they are not of the same "
                    f"images; give --{what}"
                )
        return arrays[0] if arrays else None

    y = from_folders("targets", targets)
    if y is None:
        raise ConfigError(
            "--targets is needed: give a .npy of targets, or --embeddings folders that "
            "`percae encode --out DIR` wrote from a dataset's part"
        )
    tasks = {r["task"] for _, r in records if r.get("task")}
    if task is None:
        task = tasks.pop() if len(tasks) == 1 else "position"
    trained_on = [
        f"{p} ({r['part']})" for p, r in records if r.get("part") in ("autoencoder", "all")
    ]
    if trained_on:
        log(
            f"warning: {', '.join(trained_on)} hold(s) embeddings of images the autoencoder "
            "trained on: a probe of them measures memory as much as use; encode --part "
            "predictor (and test) for the study's measure"
        )
    tests = [read_embeddings(p)[1] for p in test_embeddings]
    return probe_embeddings(
        {name: z for name, z, _ in read},
        y,
        out,
        task=task,
        groups=from_folders("groups", groups),
        test_embeddings=dict(zip(names, tests)) if tests else None,
        test_targets=load_array(test_targets, "--test-targets") if test_targets else None,
        log=log,
        **options,
    )
