"""A study's figures, drawn from its summary and run files (matplotlib, PNG and PDF, both
byte-identical when redrawn from the same files): the metric against z per model with 95%
intervals over seeds and the paper's values beside them; each model over its pixel-wise twin
with its interval; for a position task, predicted against true position of the selected MLP
on the test set; the training curves; and, for a study of several losses, the metric against
the depth of each network's layer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..layout import StudyFiles
from ..variants import PAPER_MODELS, table_order
from .depth import loss_depth
from .plotting import pyplot, save_figure, styles


def metric_against_z(summary: dict, paper: dict | None, files: StudyFiles) -> list[Path]:
    plt = pyplot()
    models, zs = table_order(summary["config"]["models"]), summary["config"]["z_sizes"]
    look = styles(models)
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
                    color=look[model][0],
                    linestyle=look[model][1],
                    label=model,
                )
            if paper is not None and model in PAPER_MODELS:
                values = [(z, paper[kind][str(z)][model]) for z in zs if str(z) in paper[kind]]
                if values:
                    ax.plot(
                        [z * apart for z, _ in values],
                        [v for _, v in values],
                        linestyle="--",
                        marker="x",
                        color=look[model][0],
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
    # An error is never below 0, an accuracy never outside [0, 1]: nor are their axes.
    low, high = axes[0][0].get_ylim()
    if summary["metric"] == "accuracy":
        axes[0][0].set_ylim(max(low, 0.0), min(high, 1.0))
    else:
        axes[0][0].set_ylim(bottom=max(low, 0.0))
    axes[0][1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{summary['dataset']}: mean and 95% interval over seeds {summary['seeds']}")
    fig.tight_layout()
    return save_figure(fig, files, "metric_vs_z")


def ratios(summary: dict, files: StudyFiles) -> list[Path]:
    comparisons = summary["comparisons"]
    if not comparisons:
        return []
    plt = pyplot()
    look = styles(summary["config"]["models"])
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
            color=look[c["perceptual"]][0],
        )
        ax.scatter(c["per_seed"], [i] * len(c["per_seed"]), s=8, color="black", alpha=0.5, zorder=3)
        labels.append(
            f"{'MLP' if c['kind'] == 'mlp' else 'linear'}: {c['perceptual']} / {c['pixel']}"
        )
    ax.axvline(1.0, color="grey", linestyle=":")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlim(left=max(ax.get_xlim()[0], 0.0))  # a ratio of such metrics is never negative
    better = "below 1" if summary["metric"] == "pixel_distance" else "above 1"
    ax.set_xlabel(
        (
            "model / its pixel-wise twin"
            if any(m not in PAPER_MODELS for m in summary["config"]["models"])
            else "perceptual / pixel-wise"
        )
        + f" test metric: mean, 95% interval, seeds (dots); better {better}"
    )
    fig.tight_layout()
    return save_figure(fig, files, "ratios")


def positions(info: dict, summary: dict, files: StudyFiles) -> list[Path]:
    """Predicted against true position (x and y) of each model's selected MLP on the test set,
    for the first seed at the latent size the Any row selects."""
    plt = pyplot()
    look = styles(summary["config"]["models"])
    seed, shown = summary["seeds"][0], []
    for model in table_order(summary["config"]["models"]):
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
    # At most six models a row, each an x panel above a y panel.
    across = min(len(shown), POSITIONS_PER_ROW)
    blocks = -(-len(shown) // across)
    fig, axes = plt.subplots(
        2 * blocks, across, figsize=(2.2 * across, 4.2 * blocks), squeeze=False
    )
    for ax in axes.flat[len(shown) :] if blocks > 1 else ():
        ax.set_visible(False)
    for i, (model, z, (predicted, truth)) in enumerate(shown):
        block, col = divmod(i, across)
        error = np.linalg.norm(predicted - truth, axis=1).mean()
        for row, axis in enumerate("xy"):
            ax = axes[2 * block + row][col]
            ax.set_visible(True)
            ax.scatter(truth[:, row], predicted[:, row], s=2, alpha=0.4, color=look[model][0])
            low, high = float(truth[:, row].min()), float(truth[:, row].max())
            ax.plot([low, high], [low, high], color="grey", linewidth=1, label="y = x (exact)")
            ax.set_xlabel(f"true {axis} (px)")
            if col == 0:
                ax.set_ylabel(f"predicted {axis} (px)")
        if model in PAPER_MODELS:
            axes[2 * block][col].set_title(f"{model}, z = {z}: {error:.2f} px")
        else:  # a variant's name may be long: on a line of its own
            axes[2 * block][col].set_title(f"{model}\nz = {z}: {error:.2f} px", fontsize=6)
    axes[0][0].legend(fontsize=5, loc="upper left")
    fig.suptitle(f"Test set, selected MLP, seed {seed}")
    fig.tight_layout()
    return save_figure(fig, files, "positions")


POSITIONS_PER_ROW = 6


def training_curves(info: dict, summary: dict, files: StudyFiles) -> list[Path]:
    plt = pyplot()
    look = styles(summary["config"]["models"])
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
            color=look[model][0],
            linestyle=look[model][1],
            alpha=0.7,
            label=label,
        )
    if not drawn:
        plt.close(fig)
        return []
    ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    if ax.get_xlim()[1] - ax.get_xlim()[0] < 1:  # a single epoch: around it, not a sliver
        ax.set_xlim(0.5, 1.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (each model's own)")
    ax.legend(fontsize=6)
    ax.set_title("Autoencoder training, every (z, seed)")
    fig.tight_layout()
    return save_figure(fig, files, "training_curves")


def write_figures(info: dict, summary: dict, paper: dict | None, files: StudyFiles) -> list[Path]:
    """Every figure this study's files allow; the paths written."""
    plt = pyplot()
    try:
        paths = metric_against_z(summary, paper, files) + ratios(summary, files)
        if summary["metric"] == "pixel_distance":
            paths += positions(info, summary, files)
        return paths + training_curves(info, summary, files) + loss_depth(summary, files)
    finally:
        plt.close("all")
