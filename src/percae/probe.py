"""The paper's evaluation for any embeddings (`percae probe`): leak-free splits by group, the
38-predictor grid with selection on validation loss, the best MLP and linear predictor
tested once, the trivial baseline, 95% intervals over predictor seeds, and several embeddings
of the same images compared by their paired ratio, as a study compares its models.

The splits are those a study makes of its predictor part (`data.split_by_group`, 20% for
validation), so a study's saved embeddings give that study's numbers exactly."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import ConfigError, atomic_write_json, atomic_write_text, check_output_folder
from .data import split_by_group
from .layout import RunFiles
from .predictors import PredictorConfig, fit_predictors, trivial_baseline
from .statistics import mean_interval, paired_ratio
from .variants import comparisons

TASKS = {"regression": "position", "classification": "classification"}  # -> fit_predictors' task
RESULT = "probe.json"


def load_array(path: str | os.PathLike, what: str) -> np.ndarray:
    """A plain .npy array (never unpickled), refused in one line otherwise."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ConfigError(
            f"{what} {path} is not a readable .npy array ({type(e).__name__}: {e})"
        ) from None


def _checked(
    name: str, x: np.ndarray, rows: int | None = None, width: int | None = None
) -> np.ndarray:
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ConfigError(
            f"embeddings {name}: need a numeric (N, z) array, got {x.dtype} {x.shape}"
        )
    if rows is not None and len(x) != rows:
        raise ConfigError(
            f"embeddings {name}: {len(x)} rows, but the targets have {rows}; they must pair up"
        )
    if width is not None and x.shape[1] != width:
        raise ConfigError(
            f"test embeddings {name}: {x.shape[1]} dimensions, its embeddings have {width}"
        )
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ConfigError(f"embeddings {name} hold NaN or inf values")
    return x


def _targets(y: np.ndarray, task: str, classes: np.ndarray | None) -> np.ndarray:
    if task == "classification":
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(
                f"classification targets must be integer class labels (N,), got {y.dtype} {y.shape}"
            )
        return (y[:, None] == classes[None, :]).astype(np.float32)  # one-hot, as the study's
    if not np.issubdtype(y.dtype, np.number) or y.ndim not in (1, 2):
        raise ConfigError(
            f"regression targets must be numbers, (N,) or (N, D), got {y.dtype} {y.shape}"
        )
    y = y.reshape(len(y), -1).astype(np.float32)
    if not np.isfinite(y).all():
        raise ConfigError("the targets hold NaN or inf values")
    return y


def probe_embeddings(
    embeddings: dict[str, np.ndarray],
    targets: np.ndarray,
    out: str | os.PathLike,
    task: str = "regression",
    groups: np.ndarray | None = None,
    test_embeddings: dict[str, np.ndarray] | None = None,
    test_targets: np.ndarray | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    split_seed: int = 0,
    config: PredictorConfig | None = None,
) -> dict:
    """Evaluate each named embedding of the same images; write `out`/probe.json, tables.md and
    each (name, seed)'s predictors under runs/; return probe.json's content.

    Without `test_embeddings`, 20% of the images (by group where `groups` are given: no group on
    two sides) are the test set; of the rest 20% validate. `seeds` seed the predictors."""
    if task not in TASKS:
        raise ConfigError(f"--task: unknown task {task!r}; choose regression or classification")
    if not embeddings:
        raise ConfigError("give at least one --embeddings file")
    config = config or PredictorConfig()
    config.validate()
    out = check_output_folder(out)
    if out.is_dir() and any(out.iterdir()) and not (out / RESULT).exists():
        raise ConfigError(
            f"--out {out} is a folder of other files; choose a new folder (or a probe's, to redo "
            "it)"
        )
    targets = np.asarray(targets)
    classes = (
        np.unique(
            np.concatenate([targets.ravel(), np.asarray(test_targets).ravel()])
            if test_targets is not None
            else targets
        )
        if task == "classification"
        else None
    )
    y = _targets(targets, task, classes)
    x = {name: _checked(name, np.asarray(z), rows=len(y)) for name, z in embeddings.items()}
    groups = np.arange(len(y)) if groups is None else np.asarray(groups).ravel()
    if len(groups) != len(y):
        raise ConfigError(
            f"--groups has {len(groups)} entries for {len(y)} targets; they must pair up"
        )
    if test_embeddings is not None:
        if test_targets is None or set(test_embeddings) != set(embeddings):
            raise ConfigError(
                "--test-embeddings: give one for each --embeddings, and --test-targets"
            )
        y_test = _targets(np.asarray(test_targets), task, classes)
        x_test = {
            n: _checked(n, np.asarray(z), rows=len(y_test), width=x[n].shape[1])
            for n, z in test_embeddings.items()
        }
        rest = np.arange(len(y))
    else:
        rest, test = split_by_group(groups, 0.2, split_seed)
        y_test, x_test = y[test], {n: z[test] for n, z in x.items()}
    train, val = (rest[p] for p in split_by_group(groups[rest], 0.2, split_seed))

    fit_task = TASKS[task]
    per_seed: dict[str, dict[str, list[float]]] = {n: {"mlp": [], "linear": []} for n in x}
    for seed in seeds:
        for name, z in x.items():
            record = fit_predictors(
                fit_task,
                z[train],
                y[train],
                z[val],
                y[val],
                x_test[name],
                y_test,
                replace(config, seed=seed),
                RunFiles(Path(out) / "runs" / f"{name}_seed{seed}"),
            )
            for kind in ("mlp", "linear"):
                per_seed[name][kind].append(getattr(record.selected, kind).test_metric)
    result = _summary(
        per_seed,
        task,
        trivial_baseline(fit_task, y[train], y_test),
        list(seeds),
        {
            "train": len(train),
            "validation": len(val),
            "test": len(y_test),
            "split_seed": split_seed,
            "groups": int(len(np.unique(groups))),
        },
        config,
    )
    atomic_write_text(Path(out) / "tables.md", probe_tables(result))
    atomic_write_json(Path(out) / RESULT, result)
    return result


def _summary(
    per_seed: dict,
    task: str,
    baseline: float,
    seeds: list[int],
    sizes: dict,
    config: PredictorConfig,
) -> dict:
    names = list(per_seed)
    lower = task == "regression"
    result = {
        "task": task,
        "metric": "mean_euclidean_error" if lower else "accuracy",
        "baseline": baseline,
        "seeds": seeds,
        "sizes": sizes,
        "predictor_config": config.to_dict(),
        "embeddings": {},
        "comparisons": [],
    }
    for name in names:
        result["embeddings"][name] = {}
        for kind, values in per_seed[name].items():
            mean, half = mean_interval(values)
            result["embeddings"][name][kind] = {"mean": mean, "ci95": half, "per_seed": values}
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
    lower = result["metric"] != "accuracy"

    def show(v):
        return f"{v:.4g}" if lower else f"{100 * v:.1f}%"

    out = [
        "# percae probe",
        "",
        f"Task: {result['task']}; metric: {result['metric'].replace('_', ' ')} "
        f"({'lower' if lower else 'higher'} is better); predictor seeds "
        f"{', '.join(map(str, result['seeds']))}; {result['sizes']['train']} / "
        f"{result['sizes']['validation']} / {result['sizes']['test']} train / validation / test "
        "images, split by group.",
        "",
        "| embeddings | best MLP | best linear |",
        "|---|---|---|",
    ]
    for name, kinds in result["embeddings"].items():
        cells = [
            show(k["mean"]) + (f" ± {show(k['ci95'])}" if k["ci95"] is not None else "")
            for k in kinds.values()
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append(f"| trivial baseline | {show(result['baseline'])} | {show(result['baseline'])} |")
    out += [
        "",
        "Mean ± half-width of the 95% interval (Student t) over the predictor seeds; each "
        "predictor is selected on validation loss and tested once.",
    ]
    if result["comparisons"]:
        out += ["", "## Ratios", ""]
        for c in result["comparisons"]:
            interval = (
                f" (95% CI {c['ratio_ci95'][0]:.2f}–{c['ratio_ci95'][1]:.2f})"
                if c["ratio_ci95"]
                else ""
            )
            out.append(
                f"- {'MLP' if c['kind'] == 'mlp' else 'Linear'}: {c['embeddings']} / "
                f"{c['reference']} = {c['ratio']:.2f}{interval}: {c['verdict']}"
            )
    return "\n".join(out) + "\n"
