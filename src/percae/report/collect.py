"""What a report needs, read from a study's folder and checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ConfigError, JsonConfig
from ..files import read_json
from ..layout import RunFiles, StudyFiles
from ..predictors import Baseline, PredictorRecord
from ..provenance import SCHEMA_VERSION
from ..study.config import StudyConfig
from ..study.data import StudyNotes
from ..study.unit import RetrainRecord, pending_units, units
from ..training import TrainingRecord


def _check_images(path: Path, recon: bool = False) -> None:
    """originals.npy (uint8 (N, S, S, 3)) or a run's reconstructions.npy (uint8 (2, N, S, S, 3):
    before and after retraining) as percae writes them; else one line naming the file."""
    try:
        images = np.load(path)  # never unpickles
        ndim = 5 if recon else 4
        ok = images.dtype == np.uint8 and images.ndim == ndim and images.shape[-1] == 3
        ok = ok and (not recon or images.shape[0] == 2)
    except (OSError, ValueError, EOFError) as e:
        ok, images = False, f"unreadable ({type(e).__name__})"
    if not ok:
        shape = images if isinstance(images, str) else f"{images.dtype} {images.shape}"
        raise ConfigError(
            f"result file {path} is not percae's images ({shape}); it is damaged or was edited: "
            "delete it (and the files of that run after it) and rerun `percae reproduce` with "
            "the same settings"
        )


def _read(record: type[JsonConfig], path: Path):
    """A result file as its record (`JsonConfig.read_result`: every key, type and rule
    checked), None where it is not written yet."""
    return record.read_result(path) if path.exists() else None


def collect(results: Path) -> dict:
    """Everything a report needs, read from a results folder."""
    files = StudyFiles(results)
    if not files.config.exists():
        raise ConfigError(
            f"{results} holds no study (no study_config.json); run `percae reproduce` first"
        )
    record = read_json(files.provenance, "result file") if files.provenance.exists() else None
    schema = record.get("schema") if isinstance(record, dict) else None
    if schema is not None and (not isinstance(schema, int) or schema > SCHEMA_VERSION):
        raise ConfigError(
            f"{results} was written by a newer percae (results schema {schema}; this percae reads "
            f"{SCHEMA_VERSION} and older): upgrade percae to report it"
        )
    study = StudyConfig.load(files.config)
    runs = {(u.model, u.z, u.seed): _run_files(files.run(u)) for u in units(study)}
    # Every file the report reads is checked here, before it writes anything.
    if files.originals.exists():
        _check_images(files.originals)
    for run in runs.values():
        if run["recon"].exists():
            _check_images(run["recon"], recon=True)
    return {
        "config": study.to_dict(),
        "perceptual_net": study.perceptual_net,
        "seeds": list(study.training_seeds()),
        "baseline": _read(Baseline, files.baseline),
        "notes": _read(StudyNotes, files.notes) or StudyNotes(data=()),
        "runs": runs,
        "complete": not pending_units(study, files),
        "provenance": record,
    }


def _run_files(run: RunFiles) -> dict:
    return {
        "train": _read(TrainingRecord, run.train_result),
        "predictors": _read(PredictorRecord, run.predictors),
        "retrain": _read(RetrainRecord, run.retrain_result),
        "recon": run.reconstructions,
        "test_predictions": run.test_predictions("mlp"),
        "history": run.history,
    }
