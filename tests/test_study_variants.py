"""A study of variants beyond the paper's four models, end to end on the tiny collection: every
model's table, the ranking, each model against its pixel-wise twin, the figures, and a study
that grows by one more variant training only that variant."""

from __future__ import annotations

import json

import pytest

from percae.layout import StudyFiles
from percae.study.presets import preset_config
from percae.reproduce import run_study

pytestmark = pytest.mark.slow

MODELS = ("AE", "P.AE", "AE[ssim]", "P.AE[alexnet-random:relu4]")


def _settings(root, models):
    return dict(
        root=str(root),
        models=models,
        seeds=(0, 1),
        z_sizes=(4,),
        train__epochs=2,
        train__perceptual_net="alexnet-random",
        predictor__epochs=15,
        retrain_epochs=0,
    )


def test_a_study_of_variants_tables_ranks_and_compares_every_model_and_grows_by_one(
    collection_path, tmp_path
):
    out = tmp_path / "variants"
    summary = run_study(
        preset_config("lunarlander", "quick", **_settings(collection_path, MODELS)),
        out,
        progress=False,
        log=lambda s: None,
    )
    files = StudyFiles(out)
    for model in MODELS:
        run = files.root / "runs" / f"{model}_z4_seed1"
        train = json.loads((run / "train_config.json").read_text())
        assert (train["loss"], train["seed"]) == (
            {"AE": "pixel", "AE[ssim]": "ssim"}.get(model, "perceptual"),
            1,
        )
        if model == "P.AE[alexnet-random:relu4]":
            assert train["perceptual_net"] == "alexnet-random:relu4"
        assert (run / "predictors.json").exists()

    # Each model but AE against AE, MLP and linear, seed by seed.
    compared = {(c["kind"], c["perceptual"], c["pixel"]) for c in summary["comparisons"]}
    assert compared == {(k, m, "AE") for k in ("mlp", "linear") for m in MODELS[1:]}
    for c in summary["comparisons"]:
        a = summary["per_seed"][c["kind"]][c["perceptual"]]["any"]
        b = summary["per_seed"][c["kind"]]["AE"]["any"]
        assert c["per_seed"] == pytest.approx([x / y for x, y in zip(a, b)])
    # The ranking holds every model, best (lowest error) first.
    ranked = [row["model"] for row in summary["ranking"]]
    assert sorted(ranked) == sorted(MODELS)
    errors = [row["mlp"] for row in summary["ranking"]]
    assert errors == sorted(errors)
    assert errors == [summary["mlp"][m]["any"] for m in ranked]
    # Every loss but pixel MSE trained at its own calibrated scale.
    variants = summary["variants"]
    assert variants["AE"]["scale"] is None
    scales = [variants[m]["scale"] for m in MODELS[1:]]
    assert all(s > 0 for s in scales) and len(set(scales)) == 3

    tables = files.tables.read_text()
    for model in MODELS:
        assert f"| {model} |" in tables  # a row of its own in every-model tables and the ranking
        if model != "AE":
            assert f"- MLP (Any): {model} / AE = " in tables
    assert "## Ranking of the models" in tables
    figures = {p.name for p in files.figures.iterdir()}
    assert {"loss_depth.png", "metric_vs_z.png", "ratios.png", "positions.png"} <= figures
    assert "P.AE[alexnet-random:relu4]" in files.tables_tex.read_text()

    lines: list[str] = []
    grown = run_study(
        preset_config("lunarlander", "quick", **_settings(collection_path, (*MODELS, "AE[lap1]"))),
        out,
        progress=False,
        log=lines.append,
    )
    trained = [line for line in lines if "training the autoencoder" in line]
    assert len(trained) == 2 and all(line.startswith("AE[lap1]_z4_seed") for line in trained)
    assert sum("finished earlier, skipped" in line for line in lines) == 2 * len(MODELS)
    assert {row["model"] for row in grown["ranking"]} == {*MODELS, "AE[lap1]"}
    for model in MODELS:  # the finished units' results are the same
        assert grown["per_seed"]["mlp"][model] == summary["per_seed"]["mlp"][model]
