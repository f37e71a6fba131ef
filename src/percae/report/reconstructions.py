"""reconstructions.png, the Fig. 6 analogue: test images, then each model's reconstructions of
them (before and after decoder retraining where it ran), each model at its smallest z."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from ..layout import StudyFiles
from ..variants import table_order


def build_figure(results: Path, info: dict) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    originals_path = StudyFiles(results).originals
    if not originals_path.exists():
        return None
    originals = np.load(originals_path)
    z, seed = min(info["config"]["z_sizes"]), info["seeds"][0]
    retrained = info["config"]["retrain_epochs"] > 0
    rows = [("original", originals)]
    for model in table_order(info["config"]["models"]):
        r = info["runs"].get((model, z, seed))
        if r and r["recon"].exists():
            before, after = np.load(r["recon"])
            rows += (
                [(f"{model} before", before), (f"{model} after", after)]
                if retrained
                else [(model, before)]
            )
    if len(rows) == 1:
        return None
    n = len(originals)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.3 * len(rows)), squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.imshow(images[j], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=7)
    what = (
        "'after' = decoder retrained with pixel loss"
        if retrained
        else "as trained (no decoder retraining)"
    )
    fig.suptitle(f"Reconstructions (z = {z}, seed {seed}); {what}", fontsize=8)
    fig.tight_layout()
    path = StudyFiles(results).figure
    atomic_write_bytes(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)
    return path
