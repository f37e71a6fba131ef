"""tables.tex: the error or accuracy tables in booktabs, mean ± 95% half-width over seeds."""

from __future__ import annotations

from ..variants import PAPER_MODELS, table_order
from .format import fmt, fmt_interval


def _tex(text: str) -> str:
    return text.replace("±", "$\\pm$").replace("%", "\\%")


def build_latex(summary: dict) -> str:
    """A table per predictor kind: a column per model (a row per model for a study beyond the
    paper's four, whose names would not fit across a page)."""
    metric = summary["metric"]
    models = table_order(summary["config"]["models"])
    across = all(m in PAPER_MODELS for m in models)
    zs = [*map(str, summary["config"]["z_sizes"]), "any"]
    what = "Test error (px)" if metric == "pixel_distance" else "Test accuracy (\\%)"
    out = ["% percae: needs \\usepackage{booktabs}"]
    for kind, title in (("mlp", "best MLP"), ("linear", "best linear regressor")):

        def cell(m, z, kind=kind):
            value = summary[kind].get(m, {}).get(z)
            return _tex(fmt_interval(value, summary["ci95"][kind].get(m, {}).get(z), metric))

        columns = models if across else zs
        out += [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{what} of the {title} on {summary['dataset']}, "
            f"mean $\\pm$ 95\\% interval over seeds {', '.join(map(str, summary['seeds']))}.}}",
            "\\begin{tabular}{l" + "r" * len(columns) + "}",
            "\\toprule",
        ]
        baseline = _tex(fmt(summary["baseline"], metric))
        if across:
            out += ["$z$ & " + " & ".join(models) + " \\\\", "\\midrule"]
            for z in zs:
                cells = [cell(m, z) for m in models]
                out.append(("Any" if z == "any" else z) + " & " + " & ".join(cells) + " \\\\")
        else:
            heads = ["Any" if z == "any" else f"$z = {z}$" for z in zs]
            out += ["model & " + " & ".join(heads) + " \\\\", "\\midrule"]
            for m in models:
                name = m.replace("_", "\\_")
                out.append(f"\\texttt{{{name}}} & " + " & ".join(cell(m, z) for z in zs) + " \\\\")
        out += [
            "\\midrule",
            "Baseline & " + " & ".join([baseline] * len(columns)) + " \\\\",
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
            "",
        ]
    return "\n".join(out)
