"""tables.md: analogues of the paper's Tables II-VIII (its numbers beside them) and, for a study
beyond the paper's four models, every model's table, their ranking and each one against the
pixel-wise model of its kind."""

from __future__ import annotations

import math

from ..loss import LOSSES
from ..study.data import StudyNotes
from ..variants import PAPER_MODELS, parse_variant, table_order
from .paper import PAPER


def fmt(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%" if metric == "accuracy" else f"{value:.2f}"


def fmt_interval(value, half, metric: str) -> str:
    if half is None or value is None:
        return fmt(value, metric)
    return f"{fmt(value, metric)} ± {fmt(half, metric)}"


def _of_baseline(value, baseline, metric: str) -> str:
    """An error as a fraction of the trivial baseline's, in parentheses (errors only: the
    paper's pixel units are unknown, a fraction of the baseline compares across them)."""
    if metric != "pixel_distance" or value is None or not baseline:
        return ""
    return f" ({value / baseline:.2f})"


def _cell(summary: dict, kind: str, model: str, z: str) -> str:
    metric, value = summary["metric"], summary[kind].get(model, {}).get(z)
    half = summary["ci95"][kind].get(model, {}).get(z)
    return fmt_interval(value, half, metric) + _of_baseline(value, summary["baseline"], metric)


def _zs(summary: dict) -> list[str]:
    return [*map(str, summary["config"]["z_sizes"]), "any"]


def _table(summary: dict, kind: str, paper: dict | None) -> list[str]:
    """The paper's table: a column per paper model of the study, the paper's beside them."""
    metric = summary["metric"]
    models = [m for m in PAPER_MODELS if m in summary["config"]["models"]]
    head = ["z size", *models] + ([f"paper {m}" for m in models] if paper else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for z in _zs(summary):
        cells = [z.capitalize() if z == "any" else z]
        cells += [_cell(summary, kind, m, z) for m in models]
        if paper:
            row = paper[kind].get(z)
            cells += [fmt(row[m], metric) if row else "–" for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    base = ["Baseline", *[fmt(summary["baseline"], metric)] * len(models)] + (
        ["–"] * len(models) if paper else []
    )
    lines.append("| " + " | ".join(base) + " |")
    return lines


def _every_model(summary: dict, kind: str) -> list[str]:
    """A row per model (any number of them), a column per z and Any."""
    zs = _zs(summary)
    lines = [
        "| model | loss | " + " | ".join("Any" if z == "any" else f"z = {z}" for z in zs) + " |",
        "|" + "---|" * (len(zs) + 2),
    ]
    for model in table_order(summary["config"]["models"]):
        cells = [model, _loss_words(model)] + [_cell(summary, kind, model, z) for z in zs]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "| Baseline | trivial | "
        + " | ".join([fmt(summary["baseline"], summary["metric"])] * len(zs))
        + " |"
    )
    return lines


def _loss_words(model: str) -> str:
    v = parse_variant(model)
    if v.uses_network:
        return f"perceptual ({v.network})" if v.network else "perceptual (the study's network)"
    return LOSSES[v.loss].description


def _ratio(c: dict | None) -> str:
    if c is None:
        return "–"
    interval = (
        f" (95% CI {c['ratio_ci95'][0]:.2f}–{c['ratio_ci95'][1]:.2f})" if c["ratio_ci95"] else ""
    )
    return f"{c['ratio']:.2f}{interval}"


def _ranking(summary: dict) -> list[str]:
    metric = summary["metric"]
    lines = [
        "| rank | model | best MLP (Any) | of baseline | best linear (Any) | vs its pixel-wise "
        "twin (MLP) | verdict | scale |",
        "|---|---|---|---|---|---|---|---|",
    ]
    variants = summary.get("variants", {})
    for rank, row in enumerate(summary["ranking"], start=1):
        scale = variants.get(row["model"], {}).get("scale")
        vs = row["vs_twin"]
        cells = [
            str(rank),
            row["model"],
            fmt_interval(row["mlp"], row["mlp_ci95"], metric),
            "–" if row["of_baseline"] is None else f"{row['of_baseline']:.2f}",
            fmt(row["linear"], metric),
            _ratio(vs),
            vs["verdict"] if vs else "–",
            "–" if scale is None else f"{scale:.4g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def build_tables(summary: dict, notes: StudyNotes | None = None) -> str:
    ds, metric = summary["dataset"], summary["metric"]
    config = summary["config"]
    paper = PAPER.get(ds)
    variants = "ranking" in summary  # a study beyond the paper's four models
    what = (
        "average test distance error in pixels" if metric == "pixel_distance" else "test accuracy"
    )
    better = "lower" if metric == "pixel_distance" else "higher"
    baseline_text = (
        "predicts the training mean position"
        if metric == "pixel_distance"
        else "predicts the most frequent training class"
    )
    numbers = paper["tables"] if paper else ("–", "–")
    out = [f"# {ds}: perceptual vs pixel-wise autoencoder embeddings", ""]
    out.append(
        f"Perceptual network: **{summary['perceptual_net']}** (weights: "
        f"{summary['perceptual_net_weights']})."
        if summary["perceptual_net"]
        else "Perceptual network: none (pixel-wise models only)."
        if not variants
        else "Perceptual network of P.AE and P.VAE: none in this study (each model names its own)."
    )
    scale, setting = summary.get("perceptual_scale"), config["train"]["perceptual_scale"]
    if scale is not None:
        how = (
            "calibrated (`--perceptual-scale auto`): the pixels' variance over the features' on "
            "the training images"
            if setting == "auto"
            else "`--perceptual-scale`" + (": the paper's loss" if scale == 1 else "")
        )
        out += [
            "",
            f"Perceptual term scale: **{scale:.4g}** ({how}); the KL weight γ of every VAE: "
            f"{config['train']['kl_weight']}.",
        ]
    notes = notes or StudyNotes(data=())
    if notes.perceptual_net:
        out += ["", f"Note: {notes.perceptual_net}."]
    models, seeds = config["models"], summary["seeds"]
    if variants:
        out += [
            "",
            f"Models: {', '.join(table_order(models))}: each an autoencoder kind (AE, VAE) and a "
            "reconstruction loss (AE[LOSS]: a loss without a network; P.AE[NET]: the perceptual "
            "loss with network NET). Every loss but pixel MSE is scaled "
            + (
                "to pixel MSE's scale (`--perceptual-scale auto`: the ratio of pixel MSE to the "
                "loss between pairs of training images; the scale column below)"
                if setting == "auto"
                else f"by {setting} (`--perceptual-scale`)"
            )
            + f"; the KL weight γ of every VAE: {config['train']['kl_weight']}.",
        ]
    elif len(models) < len(PAPER_MODELS):
        out += [
            "",
            f"Models: {', '.join(models)} (of the paper's {', '.join(PAPER_MODELS)}; `--models` "
            "runs any of them).",
        ]
    out += [
        "",
        f"Training seeds: {', '.join(map(str, seeds))}"
        + (
            "; each cell is the mean ± the half-width of its 95% confidence interval (Student t) "
            "over the seeds."
            if len(seeds) > 1
            else "; one seed, so no interval (`--seeds 3` gives mean ± 95% CI)."
        ),
    ]
    for n in notes.data:
        out += ["", f"Data: {n}."]
    if ds == "lunarlander":
        out += [
            "",
            "Differences from the study's code, by choice: frames whose lander centre is outside "
            "the frame are dropped (the study's code dropped observations with y > 1.5, 13.0% of "
            "frames against 20.3%); the predictors are trained on positions standardised by one "
            "scale for both axes, so that their validation loss weighs x and y as the reported "
            "Euclidean error does.",
        ]
    if not summary["complete"]:
        out += ["", "**This study is not complete**: missing cells are shown as –."]
    any_note = (
        "The Any row takes, per model, the z whose selected predictor has the lowest "
        "validation loss (the paper's Any column equals its best test value in every column "
        "checked: a selection on the test set, which percae does not make). Baseline: a "
        f"trivial predictor that {baseline_text}."
        + (
            " In parentheses: the error as a fraction of the baseline's (the paper's baseline "
            "is not reported; its AE rows, about 13.3 px at every z, look like one)."
            if metric == "pixel_distance"
            else ""
        )
    )
    if any(m in PAPER_MODELS for m in models):
        for kind, title, num in (
            ("mlp", "MLPs", numbers[0]),
            ("linear", "linear regressors", numbers[1]),
        ):
            out += [
                "",
                f"## Table {num} analogue: {what} for the {title} with the lowest validation loss "
                f"({better} is better)",
                "",
            ]
            out += _table(summary, kind, paper)
            out += ["", any_note]
    if variants:
        for kind, title in (("mlp", "MLPs"), ("linear", "linear regressors")):
            out += [
                "",
                f"## Every model: {what} for the {title} with the lowest validation loss "
                f"({better} is better)",
                "",
                *_every_model(summary, kind),
            ]
        out += [
            "",
            f"## Ranking of the models by the best MLP's {what} (Any)",
            "",
            *_ranking(summary),
            "",
            "Mean ± the half-width of the 95% interval over the seeds; each model against the "
            "pixel-wise model of its kind (AE or VAE), seed by seed: the ratio of their metrics, "
            "its 95% interval, and a verdict that names a winner only beyond seed noise. "
            + any_note,
        ]
    out += _reconstruction(summary, paper)
    if summary.get("active_units"):
        out += [
            "",
            "## Active units of the VAEs (latent dimensions whose mean varies over the validation "
            "set, variance > 0.01; at the best epoch; one value per seed)",
            "",
        ]
        for model, row in summary["active_units"].items():
            cells = "; ".join(
                f"z = {z}: " + ", ".join("–" if v is None else str(v) for v in values)
                for z, values in row.items()
            )
            out.append(f"- {model}: {cells}")
    heading = (
        "Each model vs the pixel-wise model of its kind" if variants else "Perceptual vs pixel-wise"
    )
    out += ["", f"## {heading}", ""]
    for c in summary["comparisons"]:
        out.append(
            f"- {'MLP' if c['kind'] == 'mlp' else 'Linear'} (Any): {c['perceptual']} / "
            f"{c['pixel']} = {_ratio(c)}: {c['verdict']}"
        )
    out += _speed(summary, variants)
    return "\n".join(out) + "\n"


def _reconstruction(summary: dict, paper: dict | None) -> list[str]:
    rel = summary.get("reconstruction_relative") or {}
    if not rel:
        return []
    models = table_order(list(rel))
    retrained = summary["config"]["retrain_epochs"] > 0
    when = (
        "after decoder retraining"
        if retrained
        else "as trained, without decoder retraining (--retrain-epochs 0)"
    )
    out = [
        "",
        f"## Table VIII analogue: reconstruction {when}, relative to the autoencoder with the "
        "lowest L1 error",
        "",
        "| | " + " | ".join(models) + " |",
        "|" + "---|" * (len(models) + 1),
        "| ours | " + " | ".join(f"{100 * rel[m]:.0f}%" for m in models) + " |",
        "| L1 error | "
        + " | ".join(f"{summary['reconstruction_l1'][m]:.4f}" for m in models)
        + " |",
    ]
    if paper:
        label = "paper" if retrained else "paper (after decoder retraining)"
        paper_rel = paper["reconstruction_relative"]
        out.append(
            f"| {label} | "
            + " | ".join(f"{100 * paper_rel[m]:.0f}%" if m in paper_rel else "–" for m in models)
            + " |"
        )
    return out


def _speed(summary: dict, variants: bool) -> list[str]:
    out = []
    if summary.get("perceptual_overhead") is not None:
        out += [
            "",
            "Training-time overhead of the perceptual loss (images/s of the pixel-wise model over "
            "the perceptual one, minus 1, averaged over "
            f"{summary.get('perceptual_overhead_pairs', 0)} pixel/perceptual pair(s)): "
            f"**{100 * summary['perceptual_overhead']:+.0f}%**"
            + (
                f" (± {100 * summary['perceptual_overhead_std']:.0f}%)"
                if summary.get("perceptual_overhead_pairs", 0) > 1
                else ""
            )
            + (
                f" with {summary.get('perceptual_net')}; the paper reports +12 ± 3% with AlexNet "
                "on a GPU."
            ),
        ]
    if variants:
        each = [
            f"{m} {100 * v['overhead']:+.0f}%"
            for m, v in summary["variants"].items()
            if v["overhead"] is not None
        ]
        if each:
            out += ["", "Training-time overhead over the pixel-wise twin: " + ", ".join(each)]
    ips = summary["images_per_second"]
    if ips and (summary.get("perceptual_overhead") is not None or variants):
        out.append("")
        out.append("Training throughput (images/s): " + ", ".join(f"{m} {ips[m]:.0f}" for m in ips))
    return out
