"""--tensorboard: each epoch's history row as scalars and the reconstructions as images, one
TensorBoard run per training run (train and reproduce). Skipped only where tensorboard is
not installed; CI installs it (the test extra)."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

pytest.importorskip(
    "tensorboard",
    reason="TensorBoard logging needs the tensorboard extra: pip install -e '.[test]'",
)

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from percae.cli import main  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies or the command line end to end


def events(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_train_logs_every_epoch_and_the_reconstructions(collection_path, tmp_path):
    run, board = tmp_path / "run", tmp_path / "board"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(collection_path),
            "--out",
            str(run),
            "--z",
            "4",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--device",
            "cpu",
            "--tensorboard",
            str(board),
        ],
    )
    assert result.exit_code == 0, result.output
    acc = events(board / "run")
    with open(run / "history.csv") as f:
        history = list(csv.DictReader(f))
    for key in ("train_loss", "val_loss", "images_per_s"):
        logged = [(e.step, e.value) for e in acc.Scalars(f"train/{key}")]
        assert [s for s, _ in logged] == [1, 2, 3]
        assert [v for _, v in logged] == pytest.approx([float(r[key]) for r in history], rel=1e-6)
    image = acc.Images("reconstructions")[-1]
    # 8 validation images above their reconstructions: 2 rows of 64 px, 8 columns.
    assert (image.height, image.width) == (128, 8 * 64)


def test_reproduce_logs_both_trainings_of_every_run(collection_path, tmp_path):
    out, board = tmp_path / "study", tmp_path / "board"
    result = CliRunner().invoke(
        main,
        [
            "reproduce",
            "lunarlander",
            "--preset",
            "quick",
            "--root",
            str(collection_path),
            "--out",
            str(out),
            "--z",
            "4",
            "--models",
            "AE,VAE",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--predictor-epochs",
            "5",
            "--retrain-epochs",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            "--tensorboard",
            str(board),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in board.iterdir()) == ["AE_z4_seed0", "VAE_z4_seed0"]
    acc = events(board / "VAE_z4_seed0")
    assert [e.step for e in acc.Scalars("train/val_loss")] == [1, 2]
    assert [e.step for e in acc.Scalars("retrain/val_loss")] == [1]
    assert "train/active_units" in acc.Tags()["scalars"]  # a VAE's diagnostics come along
    assert {"reconstructions/trained", "reconstructions/after_decoder_retraining"} <= set(
        acc.Tags()["images"]
    )


def test_tensorboard_in_a_file_is_refused_before_any_work(collection_path, tmp_path):
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(collection_path),
            "--out",
            str(tmp_path / "run"),
            "--tensorboard",
            str(tmp_path / "afile"),
        ],
    )
    assert result.exit_code == 1 and "--tensorboard" in result.stderr
    assert not (tmp_path / "run").exists()
