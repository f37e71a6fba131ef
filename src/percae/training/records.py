"""How a training went: `TrainingRecord`, what `train_autoencoder` returns and train_result.json
holds, and `TrainingDiverged`, the refusal of a run whose loss or weights became NaN or inf."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import REQUIRED, JsonConfig, setting
from ..errors import Refusal

# Burda et al. (2016): a latent dimension is active when its mean varies over the data.
ACTIVE_UNIT_VARIANCE = 0.01
LATENT_DIAGNOSTICS = ("val_reconstruction", "val_kl_term", "val_kl_per_dim", "active_units")


class TrainingDiverged(Refusal, RuntimeError):
    """The loss or the weights became NaN or infinite; nothing is saved as a finished run."""


@dataclass(kw_only=True)  # (its fields in the order of the file)
class TrainingRecord(JsonConfig):
    """train_result.json: how a finished training went (a VAE's latent diagnostics at its best
    epoch; the scale its loss used); `history` (every epoch's row, not in the file: history.csv
    holds it) where training returned it."""

    named_by_option = False
    best_epoch: int = setting(REQUIRED, min=1)
    best_val_loss: float = setting(REQUIRED, min=0)
    # (Results of earlier versions may lack the settings that default to None.)
    epochs_run: int | None = setting(None, min=1)
    seconds: float | None = setting(None, min=0)
    images_per_s: float = setting(REQUIRED, above=0)
    seconds_per_epoch: float = setting(REQUIRED, above=0)
    device: str | None = None
    bf16_autocast: bool | None = None
    perceptual_scale: float | None = setting(None, above=0)
    provenance: dict | None = None
    val_reconstruction: float | None = setting(None, min=0)
    # (A collapsed VAE's KL may round to slightly below 0.)
    val_kl_term: float | None = None
    val_kl_per_dim: float | None = None
    active_units: int | None = setting(None, min=0)
    history: tuple[dict, ...] = field(default=(), compare=False, metadata={"saved": False})

    @classmethod
    def of(
        cls, history: list[dict], best_epoch: int, best_val: float, **context
    ) -> "TrainingRecord":
        """The record of a finished training from its epochs' rows: speed from every epoch but
        the first (it pays warm-up costs), a VAE's diagnostics from its best epoch."""
        timed = history[1:] or history
        best_row = next((r for r in history if r["epoch"] == best_epoch), {})
        return cls(
            best_epoch=best_epoch,
            best_val_loss=best_val,
            epochs_run=len(history),
            seconds=float(sum(r["seconds"] for r in history)),
            images_per_s=float(np.mean([r["images_per_s"] for r in timed])),
            seconds_per_epoch=float(np.mean([r["seconds"] for r in timed])),
            **context,
            **{k: best_row[k] for k in LATENT_DIAGNOSTICS if k in best_row},
            history=tuple(history),
        )
