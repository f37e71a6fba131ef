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

from ..files import atomic_write_bytes
from ..layout import StudyFiles
from ..variants import PAPER_MODELS, parse_variant, table_order

PAPER_COLORS = {"AE": "tab:blue", "VAE": "tab:cyan", "P.AE": "tab:red", "P.VAE": "tab:orange"}
# Distinct colours for any number of other models (tab20 without the paper's), then again with
# another line style.
_OTHER = (
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:gray",
    "gold",
    "navy",
    "teal",
    "lime",
    "maroon",
    "magenta",
    "darkkhaki",
    "slateblue",
    "salmon",
)
_STYLES = ("-", "--", "-.", ":")


def styles(models) -> dict[str, tuple[str, str]]:
    """(colour, line style) of each model: the paper's four their own colours, the others the
    next free colour in the study's order, a new line style each time the colours run out."""
    out, others = {}, 0
    for model in table_order(models):
        if model in PAPER_COLORS:
            out[model] = (PAPER_COLORS[model], "-")
        else:
            out[model] = (_OTHER[others % len(_OTHER)], _STYLES[(others // len(_OTHER)) % 4])
            others += 1
    return out


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
    axes[0][1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{summary['dataset']}: mean and 95% interval over seeds {summary['seeds']}")
    fig.tight_layout()
    return _save(fig, files, "metric_vs_z")


def ratios(summary: dict, files: StudyFiles) -> list[Path]:
    comparisons = summary["comparisons"]
    if not comparisons:
        return []
    plt = _pyplot()
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
    return _save(fig, files, "ratios")


def positions(info: dict, summary: dict, files: StudyFiles) -> list[Path]:
    """Predicted against true position (x and y) of each model's selected MLP on the test set,
    for the first seed at the latent size the Any row selects."""
    plt = _pyplot()
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
            ax.plot([low, high], [low, high], color="grey", linewidth=1)
            ax.set_xlabel(f"true {axis} (px)")
            if col == 0:
                ax.set_ylabel(f"predicted {axis} (px)")
        if model in PAPER_MODELS:
            axes[2 * block][col].set_title(f"{model}, z = {z}: {error:.2f} px")
        else:  # a variant's name may be long: on a line of its own
            axes[2 * block][col].set_title(f"{model}\nz = {z}: {error:.2f} px", fontsize=6)
    fig.suptitle(f"Test set, selected MLP, seed {seed}")
    fig.tight_layout()
    return _save(fig, files, "positions")


POSITIONS_PER_ROW = 6


def training_curves(info: dict, summary: dict, files: StudyFiles) -> list[Path]:
    plt = _pyplot()
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
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (each model's own)")
    ax.legend(fontsize=6)
    ax.set_title("Autoencoder training, every (z, seed)")
    fig.tight_layout()
    return _save(fig, files, "training_curves")


def loss_depth(summary: dict, files: StudyFiles) -> list[Path]:
    """The best MLP's metric (Any; an error as a fraction of the trivial baseline) of each
    perceptual model against the depth of its network's layer, a line per network and kind, 95%
    intervals over seeds; the models without a network (pixel MSE, SSIM, ...) as horizontal
    bands; a sum of several layers as a lone marker at its deepest layer. Drawn for a study
    whose models name their own networks."""
    models = table_order(summary["config"]["models"])
    if not any(parse_variant(m).network for m in models):
        return []
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    look = styles(models)
    error = summary["metric"] == "pixel_distance"
    base = summary["baseline"] if error and summary.get("baseline") else 1.0
    kinds = [k for k in ("ae", "vae") if any(parse_variant(m).kind == k for m in models)]
    fig, axes = plt.subplots(
        1,
        len(kinds),
        figsize=(4.6 * len(kinds) + 2.2, 3.6),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    net = summary["config"]["train"]["perceptual_net"]
    for ax, kind in zip(axes[0], kinds):
        lines: dict[str, list] = {}
        for model in models:
            v = parse_variant(model)
            mean = summary["mlp"].get(model, {}).get("any")
            if v.kind != kind or mean is None:
                continue
            half = (summary["ci95"]["mlp"].get(model, {}).get("any") or 0.0) / base
            family, depth = v.family(net)
            if depth is None:
                ax.axhspan(mean / base - half, mean / base + half, color=look[model][0], alpha=0.12)
                ax.axhline(mean / base, color=look[model][0], linewidth=1, label=model)
            elif "+" in (v.network_of(net) or ""):
                ax.errorbar(
                    [depth],
                    [mean / base],
                    yerr=[half],
                    marker="*",
                    markersize=9,
                    capsize=3,
                    linestyle="none",
                    color=look[model][0],
                    label=model,
                )
            else:
                lines.setdefault(family, []).append((depth, mean / base, half, model))
        for i, (family, points) in enumerate(sorted(lines.items())):
            points.sort()
            ax.errorbar(
                [p[0] + 0.04 * i for p in points],
                [p[1] for p in points],
                yerr=[p[2] for p in points],
                marker="o",
                capsize=3,
                color=look[points[0][3]][0],
                label=family,
            )
        if error:
            ax.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="trivial baseline")
        ax.set_xlabel("layer depth in its network (AlexNet: ReLU; EfficientNet-Lite: stage)")
        ax.set_title(f"{kind.upper()} kind")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=5, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[0][0].set_ylabel(
        "test error / trivial baseline's (best MLP)" if error else "test accuracy (best MLP)"
    )
    fig.suptitle(f"{summary['dataset']}: which loss, which layer; 95% intervals over seeds")
    fig.tight_layout()
    return _save(fig, files, "loss_depth")


def write_figures(info: dict, summary: dict, paper: dict | None, files: StudyFiles) -> list[Path]:
    """Every figure this study's files allow; the paths written."""
    plt = _pyplot()
    try:
        paths = metric_against_z(summary, paper, files) + ratios(summary, files)
        if summary["metric"] == "pixel_distance":
            paths += positions(info, summary, files)
        return paths + training_curves(info, summary, files) + loss_depth(summary, files)
    finally:
        plt.close("all")
