"""figures/loss_depth: for a study of several losses, the metric against the depth of each
network's layer."""

from __future__ import annotations

from pathlib import Path

from ..layout import StudyFiles
from ..variants import parse_variant, table_order
from .plotting import pyplot, save_figure, styles


def loss_depth(summary: dict, files: StudyFiles) -> list[Path]:
    """The best MLP's metric (Any; an error as a fraction of the trivial baseline) of each
    perceptual model against the depth of its network's layer, a line per network and kind, 95%
    intervals over seeds; the models without a network (pixel MSE, SSIM, ...) as horizontal
    bands; a sum of several layers as a lone marker at its deepest layer. Drawn for a study
    whose models name their own networks."""
    models = table_order(summary["config"]["models"])
    if not any(parse_variant(m).network for m in models):
        return []
    plt = pyplot()
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
    return save_figure(fig, files, "loss_depth")
