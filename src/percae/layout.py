"""Where every file of a run and of a study lives: the one place their names are spelled.

A run folder holds one autoencoder (`percae train`, or one (model, z, seed) of a study);
in a study it also holds that autoencoder's embeddings, predictors and decoder retraining
(itself a run folder, `retrain/`). A study folder holds its settings, the shared
baseline and the report, and its runs under `runs/<model>_z<z>_seed<seed>/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFiles:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))  # a str is welcome

    # What training writes (`training.train_autoencoder`, `model.save_autoencoder`).
    @property
    def model(self) -> Path:
        """The weights, safetensors (tensors only: reading it runs no code)."""
        return self.root / "model.safetensors"

    @property
    def legacy_model(self) -> Path:
        """The weights as runs before safetensors saved them (read with torch's weights_only)."""
        return self.root / "model.pt"

    @property
    def model_config(self) -> Path:
        return self.root / "model_config.json"

    @property
    def train_config(self) -> Path:
        return self.root / "train_config.json"

    @property
    def train_result(self) -> Path:
        """Written last: a run is finished when it exists."""
        return self.root / "train_result.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def log(self) -> Path:
        """What the unit logged, where it ran on Ray (the local executor logs to the console)."""
        return self.root / "log.txt"

    @property
    def checkpoint(self) -> Path:
        """Only while the run is unfinished."""
        return self.root / "checkpoint.pt"

    # What a study adds to a run.
    def embeddings(self, part: str) -> Path:
        return self.root / f"embeddings_{part}.npy"

    @property
    def predictors(self) -> Path:
        return self.root / "predictors.json"

    def predictor(self, kind: str) -> Path:
        return self.root / f"predictor_{kind}.safetensors"

    def test_predictions(self, kind: str) -> Path:
        """The selected predictor's outputs on the test set and the truth, (2, N, D) float32."""
        return self.root / f"test_predictions_{kind}.npy"

    @property
    def retrain(self) -> "RunFiles":
        """The decoder retraining, a run of its own."""
        return RunFiles(self.root / "retrain")

    @property
    def retrain_result(self) -> Path:
        """Written last: a study's run is finished when it exists."""
        return self.root / "retrain" / "retrain.json"

    @property
    def reconstructions(self) -> Path:
        return self.root / "retrain" / "reconstructions.npy"


def run_name(model: str, z: int, seed: int) -> str:
    """The run folder of one (model, latent size, training seed) under RESULTS/runs/."""
    return f"{model}_z{z}_seed{seed}"


@dataclass(frozen=True)
class StudyFiles:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))  # a str is welcome

    def run(self, unit) -> RunFiles:
        """The run folder of a unit of the study (anything with its model, z and seed)."""
        return RunFiles(self.root / "runs" / run_name(unit.model, unit.z, unit.seed))

    @property
    def config(self) -> Path:
        return self.root / "study_config.json"

    @property
    def data(self) -> Path:
        """A LunarLander collection generated for the study when no --root is given."""
        return self.root / "data"

    @property
    def provenance(self) -> Path:
        """Schema version, software versions, device, perceptual network's fingerprint."""
        return self.root / "provenance.json"

    @property
    def notes(self) -> Path:
        return self.root / "notes.json"

    @property
    def baseline(self) -> Path:
        return self.root / "baseline.json"

    @property
    def originals(self) -> Path:
        return self.root / "originals.npy"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def tables(self) -> Path:
        return self.root / "tables.md"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def tables_tex(self) -> Path:
        return self.root / "tables.tex"

    @property
    def figure(self) -> Path:
        return self.root / "reconstructions.png"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def plot(self, name: str, suffix: str) -> Path:
        """figures/NAME.png and .pdf: the metric against z, the ratios, positions, training
        curves."""
        return self.figures / f"{name}.{suffix}"


@dataclass(frozen=True)
class EncodedFiles:
    """`percae encode --out DIR`: a part's embeddings with what a probe needs beside them."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings.npy"

    @property
    def targets(self) -> Path:
        return self.root / "targets.npy"

    @property
    def groups(self) -> Path:
        return self.root / "groups.npy"

    @property
    def record(self) -> Path:
        """Written last: what was encoded (run, data, part, task)."""
        return self.root / "encoding.json"


@dataclass(frozen=True)
class ProbeFiles:
    """`percae probe --out DIR`."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def settings(self) -> Path:
        """Written first: what the probe evaluates, so that an interrupted one resumes."""
        return self.root / "probe_config.json"

    @property
    def result(self) -> Path:
        """Written last: the probe is finished when it exists."""
        return self.root / "probe.json"

    @property
    def tables(self) -> Path:
        return self.root / "tables.md"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, name: str, seed: int) -> RunFiles:
        """The predictors of one embedding and predictor seed."""
        return RunFiles(self.runs / f"{name}_seed{seed}")


# An exported model's card (`percae export`).
MODEL_CARD = "README.md"
