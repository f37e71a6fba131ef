"""A grid fitted on one embedding as a study does it: standardised targets, the best MLP and the
best linear predictor selected on validation loss and tested once, the trivial baseline, and the
records of it all (predictors.json, baseline.json)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..config import REQUIRED, JsonConfig, setting
from ..files import atomic_write_bytes
from ..layout import RunFiles
from ..model import save_tensors
from .engine import FittedPredictor, fit_predictor_grid
from .grid import PredictorConfig


def select_best(fitted: list[FittedPredictor], kind: str) -> FittedPredictor:
    """The predictor of `kind` ("mlp" or "linear") with the lowest validation loss."""
    candidates = [f for f in fitted if f.spec.kind == kind and math.isfinite(f.val_loss)]
    if not candidates:
        raise ValueError(f"no trained {kind} predictor to select from")
    return min(candidates, key=lambda f: f.val_loss)


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


@dataclass
class SelectedPredictor(JsonConfig):
    """The predictor of one kind (MLP or linear) selected by validation loss, tested once."""

    named_by_option = False
    predictor: str
    val_loss: float = setting(REQUIRED, min=0)
    test_metric: float = setting(REQUIRED, min=0)


@dataclass
class Selection(JsonConfig):
    named_by_option = False
    mlp: SelectedPredictor
    linear: SelectedPredictor


@dataclass
class PredictorRecord(JsonConfig):
    """predictors.json: the grid fitted on one embedding, and what it selected."""

    named_by_option = False
    task: str = setting(REQUIRED, choices=("position", "classification"))
    grid_seconds: float = setting(REQUIRED, min=0)
    count: int = setting(REQUIRED, min=1)
    selected: Selection = setting(REQUIRED)
    predictors: tuple[dict, ...] = setting(REQUIRED)  # each member: spec, validation loss, epochs
    config: PredictorConfig = setting(REQUIRED)


@dataclass
class Baseline(JsonConfig):
    """baseline.json: a trivial predictor's test metric (`trivial_baseline`)."""

    named_by_option = False
    task: str = setting(REQUIRED, choices=("position", "classification"))
    baseline: float = setting(REQUIRED, min=0)


def fit_predictors(
    task,
    x_train,
    y_train,
    x_val,
    y_val,
    x_test,
    y_test,
    config: PredictorConfig,
    files: RunFiles,
    progress: bool = False,
) -> PredictorRecord:
    """Fit the grid on standardised targets, test the best MLP and the best linear regressor
    once (selected by validation loss), and save it all in the run's folder."""
    if task == "position":
        # Standardised targets keep every predictor's output scale near 1; metrics are in pixels.
        # One scale for both axes: the validation loss that selects a predictor is then the
        # mean squared Euclidean error over a constant, the error the study reports.
        mean = y_train.mean(0)
        std = np.full(y_train.shape[1], np.sqrt(y_train.var(0).mean()) + 1e-6, dtype=np.float32)
    else:
        mean, std = np.zeros(y_train.shape[1], np.float32), np.ones(y_train.shape[1], np.float32)
    t0 = time.perf_counter()
    fitted = fit_predictor_grid(
        x_train,
        (y_train - mean) / std,
        x_val,
        (y_val - mean) / std,
        config=config,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    selected = {}
    for kind in ("mlp", "linear"):
        best = select_best(fitted, kind)
        prediction = best.predict(x_test) * std + mean
        selected[kind] = SelectedPredictor(
            best.spec.name, best.val_loss, test_metric(task, prediction, y_test)
        )
        state = best.state_dict()
        save_tensors(files.predictor(kind), state)
        pairs = np.stack([prediction, np.asarray(y_test, prediction.dtype)]).astype(np.float32)
        atomic_write_bytes(files.test_predictions(kind), lambda f, a=pairs: np.save(f, a))
    record = PredictorRecord(
        task=task,
        grid_seconds=seconds,
        count=len(fitted),
        selected=Selection(**selected),
        predictors=tuple(
            # A member whose validation loss never became finite is null: it was never selectable.
            {
                "predictor": f.spec.name,
                "kind": f.spec.kind,
                **f.spec.to_dict(),
                "val_loss": f.val_loss if math.isfinite(f.val_loss) else None,
                "best_epoch": f.best_epoch,
                "epochs_run": f.epochs_run,
            }
            for f in fitted
        ),
        config=config,
    )
    record.write_result(files.predictors)
    return record
