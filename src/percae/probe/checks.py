"""What a probe checks before any file: its settings, its arrays' shapes and groups, and the
memory its grids would take."""

from __future__ import annotations

import hashlib

import numpy as np

from ..arrays import class_labels, real_array
from ..config import MAX_SEED, ConfigError
from ..predictors import PredictorConfig, grid_memory_bytes


# The study's task names; "regression" is the earlier name of "position".
TASKS = ("position", "classification")
ALIASES = {"regression": "position"}
METRICS = {"position": "pixel_distance", "classification": "accuracy"}


def check_settings(task, seeds, split_seed, config, embeddings, test_embeddings, test_targets):
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


def targets_of(what: str, y, task: str, classes=None, rows=None) -> np.ndarray:
    if task == "classification":
        labels = class_labels(what, y, rows)
        return (labels[:, None] == classes[None, :]).astype(np.float32)  # one-hot, as a study's
    y = real_array(what, y, dims=(1, 2), rows=rows)
    return y.reshape(len(y), -1)


def fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(repr((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def check_memory(x: dict, y: np.ndarray) -> None:
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
