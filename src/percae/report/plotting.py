"""What every figure of a report shares: matplotlib set up to redraw byte for byte, a colour and
line style for each model (any number of them), and PNG and PDF written atomically."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write_bytes
from ..layout import StudyFiles
from ..variants import table_order


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


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "svg.hashsalt": "percae"})
    return plt


def save_figure(fig, files: StudyFiles, name: str) -> list[Path]:
    paths = []
    for suffix, options in (("png", {"dpi": 150}), ("pdf", {"metadata": {"CreationDate": None}})):
        path = files.plot(name, suffix)
        atomic_write_bytes(path, lambda f, s=suffix, o=options: fig.savefig(f, format=s, **o))
        paths.append(path)
    fig.clf()
    return paths
