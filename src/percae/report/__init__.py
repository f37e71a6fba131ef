"""Tables, summary and figures of a study, rebuilt from the files it saved (no training):
results.csv, tables.md (analogues of the paper's Tables II-VIII, the paper's numbers beside
them; for a study of other models, every model's table and their ranking), tables.tex,
summary.json, reconstructions.png (the Fig. 6 analogue) and figures/.

In the order a report is made: `collect` (read and check every file), `summary` (the numbers),
`markdown`, `latex`, `results_table`, `figures`, `reconstructions`; `paper` holds the paper's
numbers."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ConfigError
from ..files import atomic_write_json, atomic_write_text, remove_stale_temporary_files
from ..layout import StudyFiles
from .collect import collect
from .figures import write_figures
from .latex import build_latex
from .markdown import build_tables
from .paper import PAPER
from .reconstructions import build_figure
from .results_table import build_results_table
from .summary import build_summary

__all__ = ["PAPER", "build_latex", "build_summary", "build_tables", "collect", "write_report"]

FIGURES = {
    "metric_vs_z": "the metric against z, 95% intervals over seeds, the paper's values dashed",
    "ratios": "perceptual over pixel-wise, per comparison, with its 95% interval",
    "positions": "predicted against true position, the selected MLP on the test set",
    "training_curves": "validation loss per epoch",
    "loss_depth": "the metric against the depth of each network's layer, other losses as bands",
}


def write_report(results: str | Path) -> dict:
    """Rebuild results.csv, tables.md, tables.tex, summary.json, reconstructions.png and the
    figures; return the summary. The caller holds `results` (`config.exclusive_use`)."""
    results = Path(results)
    info = collect(results)
    summary = build_summary(info)
    files = StudyFiles(results)
    try:  # a summary that cannot be saved is refused before any file of the report is rewritten
        json.dumps(summary, allow_nan=False)
    except ValueError:
        raise ConfigError(
            f"{results}: the results hold NaN or infinity; nothing of the report was rewritten"
        ) from None
    # What killed reports left (the caller holds the folder: no other run is writing there).
    for folder in (files.root, files.figures):
        remove_stale_temporary_files(folder)
    drawn = write_figures(info, summary, PAPER.get(summary["dataset"]), files)
    links = [
        f"- [{p.stem}](figures/{p.name}): {FIGURES[p.stem]}" for p in drawn if p.suffix == ".png"
    ]
    tables = build_tables(summary, info["notes"]) + (
        "\n## Figures (PNG; PDF beside each)\n\n" + "\n".join(links) + "\n" if links else ""
    )
    atomic_write_text(files.results_csv, build_results_table(info))
    atomic_write_text(files.tables, tables)
    atomic_write_text(files.tables_tex, build_latex(summary))
    atomic_write_json(files.summary, summary)
    build_figure(results, info)
    return summary
