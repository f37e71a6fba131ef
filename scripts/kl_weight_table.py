"""A markdown table of VAE studies, one row per results folder: the perceptual network, its
scale, gamma, each seed's MLP and linear test error of every model, the mean with its 95%
interval, and the active units per seed, read from each folder's summary.json.

    python scripts/kl_weight_table.py RESULTS [RESULTS ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    print(
        "| study | network | scale | γ | model | MLP per seed (px) | MLP mean ± 95% | linear per "
        "seed (px) | active units per seed | baseline |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        s = json.loads((folder / "summary.json").read_text())
        config = s["config"]
        for model, per_z in s["per_seed"]["mlp"].items():
            training = config.get("train", config)  # (results schema 1: the settings flat)
            mlp, linear = per_z["any"], s["per_seed"]["linear"][model]["any"]
            mean, half = s["mlp"][model]["any"], s["ci95"]["mlp"][model]["any"]
            units = s.get("active_units", {}).get(model, {})
            units = ", ".join(map(str, next(iter(units.values())))) if units else "–"
            scale = (
                f"{s['perceptual_scale']:.4g}"
                if model.startswith("P.") and s.get("perceptual_scale")
                else "–"
            )
            print(
                f"| {folder.name} | {s['perceptual_net'] if model.startswith('P.') else '–'} "
                f"| {scale} | {training['kl_weight'] if 'VAE' in model else '–'} | {model} | "
                f"{', '.join(f'{v:.2f}' for v in mlp)} | "
                f"{mean:.2f}" + (f" ± {half:.2f}" if half is not None else "") + f" | "
                f"{', '.join(f'{v:.2f}' for v in linear)} | {units} | {s['baseline']:.2f} |"
            )


if __name__ == "__main__":
    main()
