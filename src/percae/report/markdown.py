"""tables.md: analogues of the paper's Tables II-VIII (its numbers beside them) and, for a study
beyond the paper's four models, every model's table, their ranking and each one against the
pixel-wise model of its kind."""

from __future__ import annotations


from ..loss import LOSSES
from ..study.data import StudyNotes
from ..statistics import ratio_text, seed_note
from ..variants import PAPER_MODELS, parse_variant, table_order
from .paper import PAPER
from .format import fmt, fmt_interval
from .sections import reconstruction_lines, sizes_lines, speed_lines


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
    return "–" if c is None else ratio_text(c)


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
    note = seed_note(len(seeds))
    if note:
        out += ["", note]
    for n in notes.data:
        out += ["", f"Data: {n}."]
    out += sizes_lines(notes.sizes, config, metric)
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
            heading = f"Table {num} analogue: " if paper else ""
            out += [
                "",
                f"## {heading}{what.capitalize() if not paper else what} for the {title} with the "
                f"lowest validation loss ({better} is better)",
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
    out += reconstruction_lines(summary, paper)
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
    out += speed_lines(summary, variants)
    return "\n".join(out) + "\n"
