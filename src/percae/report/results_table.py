"""results.csv: one row per fitted predictor of every run of a study."""

from __future__ import annotations

import csv
import io


RESULT_COLUMNS = (
    "model",
    "z",
    "seed",
    "predictor",
    "kind",
    "hidden",
    "hidden_activation",
    "output_activation",
    "val_loss",
    "best_epoch",
    "epochs_run",
    "selected",
    "test_metric",
    "grid_seconds",
    "autoencoder_seconds",
)


def build_results_table(info: dict) -> str:
    """results.csv: one row per fitted predictor of every run (empty cells where a value is
    missing)."""
    rows = []
    for (model, z, seed), r in info["runs"].items():
        p = r["predictors"]
        if p is None:
            continue
        for pr in p.predictors:
            sel = next(
                (
                    k
                    for k in ("mlp", "linear")
                    if getattr(p.selected, k).predictor == pr["predictor"]
                ),
                None,
            )
            rows.append(
                {
                    "model": model,
                    "z": z,
                    "seed": seed,
                    "predictor": pr["predictor"],
                    "kind": pr["kind"],
                    "hidden": "-".join(map(str, pr["hidden"])),
                    "hidden_activation": pr["hidden_activation"] or "",
                    "output_activation": pr["output_activation"],
                    "val_loss": pr["val_loss"],
                    "best_epoch": pr["best_epoch"],
                    "epochs_run": pr["epochs_run"],
                    "selected": sel is not None,
                    "test_metric": getattr(p.selected, sel).test_metric if sel else None,
                    "grid_seconds": p.grid_seconds,
                    "autoencoder_seconds": r["train"].seconds if r["train"] else None,
                }
            )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
