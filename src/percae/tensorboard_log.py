"""TensorBoard logging of trainings (`--tensorboard DIR`): each epoch's history row as
scalars, and reconstructions as images, one TensorBoard run per training run, written
through `torch.utils.tensorboard` (the optional `tensorboard` extra).

It is attached through the training's `on_epoch` hook, the same hook that takes MLflow or
W&B (README, "Logging and metrics")."""

from __future__ import annotations

import importlib
import numbers
import os
from pathlib import Path

import numpy as np

from .config import ConfigError
from .files import check_output_folder
from .layout import RunFiles, StudyFiles


def check_tensorboard(log_dir: str | os.PathLike) -> Path:
    """Refuse, before any work, a missing TensorBoard or a folder that cannot be written."""
    try:
        importlib.import_module(
            "torch.utils.tensorboard"
        )  # an ImportError without the tensorboard package
    except ImportError:
        raise ConfigError(
            "--tensorboard needs TensorBoard: pip install 'percae[tensorboard]' "
            "(or pip install tensorboard)"
        ) from None
    return check_output_folder(log_dir, "--tensorboard")


class TensorBoardLog:
    """Event files under `log_dir`, one subfolder per run name; writers open at first use."""

    def __init__(self, log_dir: str | os.PathLike):
        self.log_dir = check_tensorboard(log_dir)
        self._writers: dict = {}

    def _writer(self, run: str):
        from torch.utils.tensorboard import SummaryWriter

        if run not in self._writers:
            self._writers[run] = SummaryWriter(log_dir=str(self.log_dir / run))
        return self._writers[run]

    def epoch(self, run: str, row: dict, phase: str = "train") -> None:
        """One history row (losses, seconds, images/s, a VAE's diagnostics) at step `epoch`;
        tags are PHASE/KEY (train/val_loss, retrain/val_loss, ...)."""
        writer = self._writer(run)
        for key, value in row.items():
            if key != "epoch" and isinstance(value, numbers.Real) and not isinstance(value, bool):
                writer.add_scalar(f"{phase}/{key}", float(value), int(row["epoch"]))
        writer.flush()

    def reconstructions(
        self,
        run: str,
        originals: np.ndarray,
        reconstructions: np.ndarray,
        tag: str = "reconstructions",
        step: int = 0,
    ) -> None:
        """Originals above their reconstructions: uint8 (N, S, S, 3) arrays, as the study saves
        them."""
        grid = np.concatenate(
            [np.concatenate(list(originals), axis=1), np.concatenate(list(reconstructions), axis=1)]
        )
        writer = self._writer(run)
        writer.add_image(tag, grid, step, dataformats="HWC")
        writer.flush()

    def validation_reconstructions(
        self, run: str, model, images, step: int, device: str = "auto", count: int = 8
    ) -> None:
        """The first `count` validation images above a trained model's reconstructions of them
        (`percae train`), at the best epoch's step."""
        from .embeddings import reconstruct

        sample = np.arange(min(count, len(images)))
        self.reconstructions(
            run,
            images.subset(sample).materialize(),
            reconstruct(model, images, sample, device),
            step=step,
        )

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def log_study_reconstructions(board: TensorBoardLog, results: str | os.PathLike) -> None:
    """Each finished run's reconstructions of the study's sample test images (as trained, and
    after decoder retraining where it ran) under that run's name."""
    files = StudyFiles(results)
    if not files.originals.exists():
        return
    originals = np.load(files.originals)
    for folder in sorted((files.root / "runs").glob("*")):
        path = RunFiles(folder).reconstructions
        if path.exists():
            before, after = np.load(path)
            board.reconstructions(folder.name, originals, before, "reconstructions/trained")
            if not np.array_equal(before, after):
                board.reconstructions(
                    folder.name, originals, after, "reconstructions/after_decoder_retraining"
                )
