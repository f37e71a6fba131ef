"""A probe's tables.md."""

from __future__ import annotations


def probe_tables(result: dict) -> str:
    from ..statistics import interval_text, ratio_text, seed_note

    accuracy = result["metric"] == "accuracy"

    def show(v):
        return f"{100 * v:.1f}%" if accuracy else f"{v:.4g}"

    what = "accuracy" if accuracy else "mean Euclidean distance (the targets' units)"
    out = [
        "# percae probe",
        "",
        f"Task: {result['task']}; metric: {what} ({'higher' if accuracy else 'lower'} is "
        f"better); predictor seeds {', '.join(map(str, result['seeds']))}; "
        f"{result['sizes']['train']} / {result['sizes']['validation']} / "
        f"{result['sizes']['test']} train / validation / test images in "
        f"{result['sizes']['groups']} groups, split by group.",
        "",
        "| embeddings | best MLP | best linear |",
        "|---|---|---|",
    ]
    for name, kinds in result["embeddings"].items():
        cells = [
            interval_text(k["mean"], k["ci95"], show, *k.get("bounds", (None, None)))
            for k in kinds.values()
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append(f"| trivial baseline | {show(result['baseline'])} | {show(result['baseline'])} |")
    out += [
        "",
        "Mean ± half-width of the 95% interval (Student t) over the predictor seeds (where it "
        "would leave the metric's range, the interval itself, cut there); each predictor is "
        "selected on validation loss and tested once.",
    ]
    note = seed_note(len(result["seeds"]), "--seeds")
    if note:
        out += ["", note]
    if result["comparisons"]:
        out += ["", "## Ratios", ""]
        for c in result["comparisons"]:
            out.append(
                f"- {'MLP' if c['kind'] == 'mlp' else 'Linear'}: {c['embeddings']} / "
                f"{c['reference']} = {ratio_text(c)}: {c['verdict']}"
            )
    return "\n".join(out) + "\n"
