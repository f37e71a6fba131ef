"""A study's figures, drawn from its summary and run files (matplotlib, PNG and PDF, both
byte-identical when redrawn from the same files): the metric against z per model with 95%
intervals over seeds and the paper's values beside them; the perceptual/pixel ratios with
their intervals; for a position task, predicted against true position of the selected MLP
on the test set; and the training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .config import atomic_write_bytes
from .layout import StudyFiles

COLORS = {"AE": "tab:blue", "VAE": "tab:cyan", "P.AE": "tab:red", "P.VAE": "tab:orange"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "svg.hashsalt": "percae"})
    return plt


def _save(fig, files: StudyFiles, name: str) -> list[Path]:
    paths = []
    for suffix, options in (("png", {"dpi": 150}), ("pdf", {"metadata": {"CreationDate": None}})):
        path = files.plot(name, suffix)
        atomic_write_bytes(path, lambda f, s=suffix, o=options: fig.savefig(f, format=s, **o))
        paths.append(path)
    fig.clf()
    return paths


def metric_against_z(summary: dict, paper: dict | None, files: StudyFiles) -> list[Path]:
    plt = _pyplot()
    models, zs = summary["config"]["models"], summary["config"]["z_sizes"]
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.0), sharey=True, squeeze=False)
    for ax, kind, title in zip(axes[0], ("mlp", "linear"), ("best MLP", "best linear regressor")):
        for i, model in enumerate(models):
            # Each model a little apart along z, so that intervals at one z do not hide each other.
            apart = 2 ** (0.06 * (i - (len(models) - 1) / 2))
            means = [summary[kind].get(model, {}).get(str(z)) for z in zs]
            halves = [summary["ci95"][kind].get(model, {}).get(str(z)) or 0.0 for z in zs]
            shown = [(z, m, h) for z, m, h in zip(zs, means, halves) if m is not None]
            if shown:
                x, m, h = zip(*shown)
                ax.errorbar(
                    [z * apart for z in x],
                    m,
                    yerr=h,
                    marker="o",
                    capsize=3,
                    color=COLORS.get(model),
                    label=model,
                )
            if paper is not None:
                column = list(COLORS).index(model)
                values = [(z, paper[kind][str(z)][column]) for z in zs if str(z) in paper[kind]]
                if values:
                    ax.plot(
                        [z * apart for z, _ in values],
                        [v for _, v in values],
                        linestyle="--",
                        marker="x",
                        color=COLORS.get(model),
                        alpha=0.6,
                        label=f"{model} (paper)",
                    )
        if summary.get("baseline") is not None:
            ax.axhline(
                summary["baseline"],
                color="grey",
                linewidth=1,
                linestyle=":",
                label="trivial baseline",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(zs, [str(z) for z in zs])
        ax.set_xlabel("latent size z")
        ax.set_title(title)
    axes[0][0].set_ylabel(
        "test error (px)" if summary["metric"] == "pixel_distance" else "test accuracy"
    )
    axes[0][1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{summary['dataset']}: mean and 95% interval over seeds {summary['seeds']}")
    fig.tight_layout()
    return _save(fig, files, "metric_vs_z")


def ratios(summary: dict, files: StudyFiles) -> list[Path]:
    comparisons = summary["comparisons"]
    if not comparisons:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.45 * len(comparisons)))
    labels = []
    for i, c in enumerate(comparisons):
        low, high = c["ratio_ci95"] or (c["ratio"], c["ratio"])
        ax.errorbar(
            [c["ratio"]],
            [i],
            xerr=[[c["ratio"] - low], [high - c["ratio"]]],
            marker="o",
            capsize=3,
            color=COLORS.get(c["perceptual"]),
        )
        ax.scatter(c["per_seed"], [i] * len(c["per_seed"]), s=8, color="black", alpha=0.5, zorder=3)
        labels.append(
            f"{'MLP' if c['kind'] == 'mlp' else 'linear'}: {c['perceptual']} / {c['pixel']}"
        )
    ax.axvline(1.0, color="grey", linestyle=":")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    better = "below 1" if summary["metric"] == "pixel_distance" else "above 1"
    ax.set_xlabel(
        f"perceptual / pixel-wise test metric: mean, 95% interval, seeds (dots); better {better}"
    )
    fig.tight_layout()
    return _save(fig, files, "ratios")


def positions(info: dict, summary: dict, files: StudyFiles) -> list[Path]:
    """Predicted against true position (x and y) of each model's selected MLP on the test set,
    for the first seed at the latent size the Any row selects."""
    plt = _pyplot()
    seed, shown = summary["seeds"][0], []
    for model in summary["config"]["models"]:
        candidates = [
            (r["predictors"].selected.mlp.val_loss, z)
            for (m, z, s), r in info["runs"].items()
            if m == model and s == seed and r["predictors"] and r["test_predictions"].exists()
        ]
        if candidates:
            z = min(candidates)[1]
            shown.append((model, z, np.load(info["runs"][(model, z, seed)]["test_predictions"])))
    if not shown:
        return []
    fig, axes = plt.subplots(2, len(shown), figsize=(2.2 * len(shown), 4.2), squeeze=False)
    for col, (model, z, (predicted, truth)) in enumerate(shown):
        error = np.linalg.norm(predicted - truth, axis=1).mean()
        for row, axis in enumerate("xy"):
            ax = axes[row][col]
            ax.scatter(truth[:, row], predicted[:, row], s=2, alpha=0.4, color=COLORS.get(model))
            low, high = float(truth[:, row].min()), float(truth[:, row].max())
            ax.plot([low, high], [low, high], color="grey", linewidth=1)
            ax.set_xlabel(f"true {axis} (px)")
            if col == 0:
                ax.set_ylabel(f"predicted {axis} (px)")
        axes[0][col].set_title(f"{model}, z = {z}: {error:.2f} px")
    fig.suptitle(f"Test set, selected MLP, seed {seed}")
    fig.tight_layout()
    return _save(fig, files, "positions")


def training_curves(info: dict, summary: dict, files: StudyFiles) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    drawn = set()
    for (model, _z, _seed), r in info["runs"].items():
        if not r["history"].exists():
            continue
        with open(r["history"], newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            continue
        label = model if model not in drawn else None
        drawn.add(model)
        ax.plot(
            [int(row["epoch"]) for row in rows],
            [float(row["val_loss"]) for row in rows],
            marker=".",
            color=COLORS.get(model),
            alpha=0.7,
            label=label,
        )
    if not drawn:
        plt.close(fig)
        return []
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (each model's own)")
    ax.legend(fontsize=6)
    ax.set_title("Autoencoder training, every (z, seed)")
    fig.tight_layout()
    return _save(fig, files, "training_curves")


def write_figures(info: dict, summary: dict, paper: dict | None, files: StudyFiles) -> list[Path]:
    """Every figure this study's files allow; the paths written."""
    plt = _pyplot()
    try:
        paths = metric_against_z(summary, paper, files) + ratios(summary, files)
        if summary["metric"] == "pixel_distance":
            paths += positions(info, summary, files)
        return paths + training_curves(info, summary, files)
    finally:
        plt.close("all")
