"""Early stopping's one rule, for the autoencoders and the predictors alike."""

from __future__ import annotations


def early_stopping_patience(epochs: int, patience: int | None) -> int:
    """Epochs without a better validation loss before training stops: as set, else the
    study's max(10, epochs // 20)."""
    return patience if patience is not None else max(10, epochs // 20)
