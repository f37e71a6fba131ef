"""Report statistics: the Student-t interval, per-seed aggregation, and verdicts that claim
a winner only beyond seed noise. Built on synthetic run records (no training)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from percae.report import build_summary, build_tables
from percae.statistics import mean_interval
from percae.predictors import (
    Baseline,
    PredictorConfig,
    PredictorRecord,
    SelectedPredictor,
    Selection,
)
from percae.study.config import StudyConfig, with_settings
from percae.study.data import StudyNotes
from percae.study.unit import RetrainRecord
from percae.training import TrainingRecord


@pytest.mark.parametrize(
    "values", [[1.0, 2.0], [3.1, 2.9, 3.4], [10.0, 12.5, 9.0, 11.2, 10.4, 13.0]]
)
def test_mean_interval_is_scipys_student_t_interval(values):
    mean, half = mean_interval(values)
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    assert mean == pytest.approx(np.mean(values))
    assert mean - half == pytest.approx(low) and mean + half == pytest.approx(high)


def test_one_value_has_no_interval():
    assert mean_interval([4.0]) == (4.0, None)


def _run(mlp, linear, mlp_val=1.0, linear_val=1.0):
    selected = Selection(
        SelectedPredictor("m", mlp_val, mlp), SelectedPredictor("l", linear_val, linear)
    )
    return {
        "train": TrainingRecord(
            best_epoch=1,
            best_val_loss=0.1,
            epochs_run=1,
            seconds=1.0,
            images_per_s=100.0,
            seconds_per_epoch=1.0,
            device="cpu",
            bf16_autocast=False,
        ),
        "predictors": PredictorRecord("position", 0.1, 38, selected, (), PredictorConfig()),
        "retrain": RetrainRecord(0.2, 0.1, 1, 1),
        "recon": None,
    }


def _info(errors: dict, seeds, z_sizes=(32,)):
    """errors: {(model, z, seed): (mlp, linear)} for a position study."""
    runs = {(m, z, s): _run(*errors[(m, z, s)]) for (m, z, s) in errors}
    models = sorted({m for m, _, _ in errors})
    study = with_settings(
        StudyConfig(models=tuple(models), z_sizes=tuple(z_sizes)),
        {"train__perceptual_net": "alexnet-random"},
    )
    return {
        "config": study.to_dict(),
        "perceptual_net": study.perceptual_net,
        "seeds": list(seeds),
        "baseline": Baseline("position", 22.0),
        "notes": StudyNotes(data=()),
        "runs": runs,
        "complete": all(r["retrain"] is not None for r in runs.values()),
    }


def test_per_seed_values_means_and_intervals():
    ae, pae = [20.0, 21.0, 22.0], [8.0, 10.0, 9.0]
    errors = {("AE", 32, s): (ae[i], ae[i] + 1) for i, s in enumerate((0, 1, 2))}
    errors |= {("P.AE", 32, s): (pae[i], pae[i] + 1) for i, s in enumerate((0, 1, 2))}
    summary = build_summary(_info(errors, (0, 1, 2)))
    assert (
        summary["per_seed"]["mlp"]["AE"]["32"] == ae
        and summary["per_seed"]["mlp"]["P.AE"]["any"] == pae
    )
    assert summary["mlp"]["AE"]["32"] == pytest.approx(21.0)
    assert summary["ci95"]["mlp"]["AE"]["32"] == pytest.approx(
        stats.t.ppf(0.975, 2) * stats.sem(ae)
    )
    (mlp,) = [c for c in summary["comparisons"] if c["kind"] == "mlp"]
    ratios = [p / a for p, a in zip(pae, ae)]
    assert mlp["per_seed"] == pytest.approx(ratios) and mlp["ratio"] == pytest.approx(
        np.mean(ratios)
    )
    assert mlp["ratio_ci95"][1] < 1 and mlp["verdict"] == "P.AE beats AE beyond seed noise"
    tables = build_tables(summary)
    assert "21.00 ± 2.48" in tables  # mean ± t(0.975, 2) * sem over the three seeds
    assert "P.AE beats AE beyond seed noise" in tables


def test_overlapping_seeds_are_called_seed_noise():
    ae, pae = [20.0, 12.0, 16.0], [15.0, 18.0, 13.0]
    errors = {("AE", 32, s): (ae[s], 1.0) for s in range(3)} | {
        ("P.AE", 32, s): (pae[s], 1.0) for s in range(3)
    }
    summary = build_summary(_info(errors, range(3)))
    (mlp,) = [c for c in summary["comparisons"] if c["kind"] == "mlp"]
    assert mlp["ratio_ci95"][0] < 1 < mlp["ratio_ci95"][1]
    assert mlp["verdict"] == "the difference is within seed noise"
    assert "beats" not in build_tables(summary).split("## Perceptual vs pixel-wise")[1]


def test_pixel_better_beyond_noise_and_one_seed_unknown():
    ae, pae = [5.0, 5.2, 4.9], [9.0, 9.4, 8.8]
    errors = {("AE", 32, s): (ae[s], 1.0) for s in range(3)} | {
        ("P.AE", 32, s): (pae[s], 1.0) for s in range(3)
    }
    (mlp,) = [
        c for c in build_summary(_info(errors, range(3)))["comparisons"] if c["kind"] == "mlp"
    ]
    assert mlp["verdict"] == "AE beats P.AE beyond seed noise"
    one = {("AE", 32, 0): (20.0, 1.0), ("P.AE", 32, 0): (5.0, 1.0)}
    (mlp,) = [c for c in build_summary(_info(one, [0]))["comparisons"] if c["kind"] == "mlp"]
    assert mlp["ratio"] == 0.25 and mlp["ratio_ci95"] is None and "unknown" in mlp["verdict"]


def test_any_row_picks_each_seeds_own_best_z():
    # Seed 0 validates best at z=32, seed 1 at z=64: Any takes each seed's own choice.
    runs = {
        ("AE", 32, 0): _run(10.0, 1.0, mlp_val=0.1),
        ("AE", 64, 0): _run(30.0, 1.0, mlp_val=0.2),
        ("AE", 32, 1): _run(40.0, 1.0, mlp_val=0.3),
        ("AE", 64, 1): _run(20.0, 1.0, mlp_val=0.1),
    }
    info = _info({k: (0, 0) for k in runs}, (0, 1), z_sizes=(32, 64))
    info["runs"] = runs
    summary = build_summary(info)
    assert summary["per_seed"]["mlp"]["AE"]["any"] == [10.0, 20.0]
    assert summary["mlp"]["AE"]["any"] == pytest.approx(15.0)


def test_a_missing_seed_is_left_out_not_counted():
    errors = {("AE", 32, 0): (20.0, 1.0), ("AE", 32, 1): (22.0, 1.0), ("P.AE", 32, 0): (8.0, 1.0)}
    info = _info(errors, (0, 1))
    info["runs"][("P.AE", 32, 1)] = {
        "train": None,
        "predictors": None,
        "retrain": None,
        "recon": None,
    }
    summary = build_summary(info)
    assert summary["per_seed"]["mlp"]["P.AE"]["32"] == [8.0, None]
    assert summary["mlp"]["P.AE"]["32"] == 8.0 and summary["ci95"]["mlp"]["P.AE"]["32"] is None
    (mlp,) = [c for c in summary["comparisons"] if c["kind"] == "mlp"]
    assert mlp["per_seed"] == [8.0 / 20.0]


def test_errors_are_also_given_as_fractions_of_the_baseline_and_the_scale_used_is_stated():
    errors = {("AE", 32, s): (e, e) for s, e in enumerate([22.0, 20.9, 23.1])}
    errors |= {("P.AE", 32, s): (e, e) for s, e in enumerate([11.0, 9.9, 12.1])}
    info = _info(errors, (0, 1, 2))
    for (model, _, _), run in info["runs"].items():
        if model == "P.AE":
            run["train"] = replace(run["train"], perceptual_scale=725.5)
    info["config"]["train"]["perceptual_scale"] = "auto"
    summary = build_summary(info)
    assert summary["perceptual_scale"] == 725.5
    tables = build_tables(summary)
    assert "| 32 | 22.00 ± 2.73 (1.00) | 11.00 ± 2.73 (0.50) |" in tables  # baseline 22.0
    assert "Perceptual term scale: **725.5** (calibrated (`--perceptual-scale auto`)" in tables
    assert "y > 1.5" in tables  # the off-screen rule that differs from the study's code is stated


def test_two_seeds_of_accuracies_keep_their_intervals_within_0_and_100_and_carry_a_note():
    acc = {"AE": [0.95, 0.55], "P.AE": [0.97, 0.91]}
    errors = {(m, 32, s): (a[s], a[s]) for m, a in acc.items() for s in (0, 1)}
    info = _info(errors, (0, 1))
    for run in info["runs"].values():
        run["predictors"] = replace(run["predictors"], task="classification")
    info["baseline"] = Baseline("classification", 0.5)
    tables = build_tables(build_summary(info))
    # AE: mean 75%, half-width t(0.975, 1) * 0.2 = 254%: the interval is cut at the metric's range.
    assert "75.0% (95% CI 0.0%–100.0%)" in tables
    # P.AE: mean 94%, half-width 12.706 * 0.03 = 38.1%: cut at 100% only.
    assert "94.0% (95% CI 55.9%–100.0%)" in tables
    assert "Note: 2 seeds: the 95% interval of two seeds is very wide; --seeds 3 or more" in tables
