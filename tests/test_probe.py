"""`percae probe`: a study's own embeddings give that study's numbers exactly; several
embeddings are compared by their paired ratio; bad arrays are refused before any file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from percae.cli import main
from percae.data.lunarlander import LunarLanderConfig, generate_lunarlander, lunarlander_study_data
from percae.predictors import PredictorConfig
from percae.probe import probe_embeddings
from percae.study.presets import preset_config
from percae.reproduce import run_study

pytestmark = pytest.mark.slow  # whole studies or the command line end to end


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    generate_lunarlander(
        root / "collection",
        LunarLanderConfig(rollouts=12, steps=40, seed=3, workers=2),
        progress=False,
    )
    config = preset_config(
        "lunarlander",
        "quick",
        root=str(root / "collection"),
        z_sizes=(4,),
        train__epochs=1,
        predictor__epochs=15,
        retrain_epochs=0,
        models=("AE",),
        seeds=(1,),
        seed=0,
    )
    run_study(config, root / "results", progress=False, log=lambda s: None)
    return root


def test_a_studys_own_embeddings_give_its_numbers_exactly(study, tmp_path):
    data = lunarlander_study_data(study / "collection", seed=0)
    run = study / "results" / "runs" / "AE_z4_seed1"
    result = probe_embeddings(
        {"AE": np.load(run / "embeddings_predictor.npy")},
        data.predictor.selected_targets(),
        tmp_path / "probe",
        groups=data.predictor.selected_groups(),
        test_embeddings={"AE": np.load(run / "embeddings_test.npy")},
        test_targets=data.test.selected_targets(),
        seeds=(1,),
        split_seed=0,
        config=PredictorConfig(epochs=15, device="auto"),
    )
    selected = json.loads((run / "predictors.json").read_text())["selected"]
    for kind in ("mlp", "linear"):
        assert result["embeddings"]["AE"][kind]["per_seed"] == [selected[kind]["test_metric"]]
    summary = json.loads((study / "results" / "summary.json").read_text())
    assert result["baseline"] == summary["baseline"]


def _write(folder, **arrays):
    folder.mkdir(exist_ok=True)
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", a)
    return folder


def test_two_embeddings_are_compared_by_their_ratio_with_its_interval(tmp_path):
    g = np.random.default_rng(0)
    y = g.normal(size=(600, 2)).astype(np.float32) * 10
    groups = np.repeat(np.arange(60), 10)  # 60 "rollouts" of 10 frames
    d = _write(
        tmp_path / "in",
        targets=y,
        groups=groups,
        informative=np.concatenate([y + g.normal(size=y.shape), g.normal(size=(600, 6))], 1).astype(
            np.float32
        ),
        noise=g.normal(size=(600, 8)).astype(np.float32),
    )
    result = CliRunner().invoke(
        main,
        [
            "probe",
            "--embeddings",
            str(d / "noise.npy"),
            "--embeddings",
            str(d / "informative.npy"),
            "--targets",
            str(d / "targets.npy"),
            "--groups",
            str(d / "groups.npy"),
            "--seeds",
            "3",
            "--predictor-epochs",
            "40",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    probe = json.loads((tmp_path / "out" / "probe.json").read_text())
    (mlp,) = [c for c in probe["comparisons"] if c["kind"] == "mlp"]
    assert (
        mlp["embeddings"] == "informative"
        and mlp["reference"] == "noise"
        and len(mlp["per_seed"]) == 3
    )
    assert (
        mlp["ratio_ci95"][1] < 0.5 and mlp["verdict"] == "informative beats noise beyond seed noise"
    )
    assert f"informative / noise = {mlp['ratio']:.2f} (95% CI" in result.output
    noise = probe["embeddings"]["noise"]["mlp"]["mean"]
    assert noise == pytest.approx(probe["baseline"], rel=0.15)  # noise locates nothing
    assert (
        probe["sizes"]["test"] == 120 and probe["sizes"]["validation"] == 100
    )  # whole groups of 10


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(embeddings=np.zeros((9, 3), np.float32)), "has 9 rows where 10 are paired"),
        (dict(embeddings=np.full((10, 3), np.nan, np.float32)), "NaN or infinite"),
        (dict(embeddings=np.zeros(10, np.float32)), "must be 2-dimensional"),
        (dict(embeddings=np.array([{"a": 1}] * 10, dtype=object)), "not a readable .npy array"),
    ],
)
def test_bad_arrays_are_refused_in_one_line_before_any_file(arrays, message, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    np.save(d / "targets.npy", np.zeros((10, 2), np.float32))
    np.save(d / "embeddings.npy", arrays["embeddings"], allow_pickle=True)
    result = CliRunner().invoke(
        main,
        [
            "probe",
            "--embeddings",
            str(d / "embeddings.npy"),
            "--targets",
            str(d / "targets.npy"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line
    assert not (tmp_path / "out").exists()
