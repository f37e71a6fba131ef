"""Predictors on embeddings: the paper's grid of MLPs and linear regressors (`grid`), all
trained together in one vectorised pass (`engine`), and a grid fitted, selected and tested as a
study does it (`evaluate`). It works on plain arrays: neither data nor models are imported."""

from .engine import FittedPredictor, fit_predictor_grid, grid_memory_bytes
from .evaluate import (
    Baseline,
    PredictorRecord,
    SelectedPredictor,
    Selection,
    fit_predictors,
    select_best,
    test_metric,
    trivial_baseline,
)
from .grid import (
    HIDDEN_ACTIVATIONS,
    HIDDEN_SIZES,
    OUTPUT_ACTIVATIONS,
    PredictorConfig,
    PredictorSpec,
    predictor_grid,
)

__all__ = [
    "Baseline",
    "FittedPredictor",
    "HIDDEN_ACTIVATIONS",
    "HIDDEN_SIZES",
    "OUTPUT_ACTIVATIONS",
    "PredictorConfig",
    "PredictorRecord",
    "PredictorSpec",
    "SelectedPredictor",
    "Selection",
    "fit_predictor_grid",
    "fit_predictors",
    "grid_memory_bytes",
    "predictor_grid",
    "select_best",
    "test_metric",
    "trivial_baseline",
]
