"""Autoencoder training: Adam, early stopping on validation loss with the best epoch kept,
per-epoch checkpoints so an interrupted run resumes exactly, and a run folder (weights,
configs as JSON, history as CSV).

In the order a run uses them: `config` (TrainConfig, what a resume may change), `records`
(how a training went), `state` (the checkpoint), `steps` (objective, training pass,
validation, diagnostics, the scale's calibration), `loop` (`train_autoencoder`).

Images stay uint8 until a batch is on the device; where the set fits it lives on the device
and batches are drawn by index there, and no step waits on the host. The targets' features a
loss keeps (a perceptual network's) are computed once per run where they fit their budget.
"""

from .config import TrainConfig
from .loop import train_autoencoder
from .records import LATENT_DIAGNOSTICS, TrainingDiverged, TrainingRecord
from .state import TrainState, match_state_layout
from .steps import Objective, evaluate_loss, latent_diagnostics, objective, resolve_perceptual_scale

__all__ = [
    "LATENT_DIAGNOSTICS",
    "Objective",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "TrainingRecord",
    "evaluate_loss",
    "latent_diagnostics",
    "match_state_layout",
    "objective",
    "resolve_perceptual_scale",
    "train_autoencoder",
]
