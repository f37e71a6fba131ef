"""summary.json: a study's results per model (variant), z and seed, their means and 95%
intervals, each non-pixel variant against its pixel-wise twin, the VAEs' active units,
reconstruction, training speed, and (for studies beyond the paper's four models) their ranking."""

from __future__ import annotations

import math

import numpy as np

from ..perceptual_networks import describe_weights
from ..statistics import mean_interval, paired_ratio
from ..variants import PAPER_MODELS, comparisons, parse_variant, table_order


def _present(values: list) -> list:
    return [v for v in values if v is not None]


def build_summary(info: dict) -> dict:
    config, runs, seeds = info["config"], info["runs"], info["seeds"]
    baseline = info["baseline"]
    task = baseline.task if baseline else "position"
    summary = {
        "dataset": config["dataset"],
        "metric": "accuracy" if task == "classification" else "pixel_distance",
        "baseline": baseline.baseline if baseline else None,
        "seeds": seeds,
        "mlp": {},
        "linear": {},
        "ci95": {"mlp": {}, "linear": {}},
        "per_seed": {"mlp": {}, "linear": {}},
        "comparisons": [],
        "reconstruction_relative": {},
        "seconds_per_epoch": {},
        "images_per_second": {},
        "perceptual_overhead": None,
        "perceptual_net": info["perceptual_net"],
        "perceptual_net_weights": describe_weights(
            info["perceptual_net"], config["train"]["perceptual_weights"]
        ),
        "perceptual_net_note": info["notes"].perceptual_net,
        "perceptual_scale": _scale_used(runs, config),
        "complete": info["complete"],
        "config": config,
        "provenance": info.get("provenance"),  # None: a study written before percae recorded it
    }
    for kind in ("mlp", "linear"):
        _add_metric_section(summary, kind, runs, config, seeds)
    summary["comparisons"] = _comparisons(summary)
    summary["active_units"] = _active_units(runs, config, seeds)
    _add_reconstruction_section(summary, runs, config, seeds)
    _add_speed_section(summary, runs, config)
    if any(m not in PAPER_MODELS for m in config["models"]):
        summary["variants"] = _variants(runs, config)
        summary["ranking"] = ranking(summary)
    return summary


def _add_metric_section(summary: dict, kind: str, runs: dict, config: dict, seeds: list) -> None:
    """Tables II-VII: per model, per z and for Any, each seed's test metric of the selected
    predictor of `kind`, their mean and 95% interval. Any takes, per seed, the z whose selected
    predictor has the lowest validation loss."""
    for model in config["models"]:
        per_seed: dict[str, list] = {str(z): [] for z in config["z_sizes"]}
        per_seed["any"] = []
        for seed in seeds:
            best_val, best_any = math.inf, None
            for z in config["z_sizes"]:
                record = runs[(model, z, seed)]["predictors"]
                chosen = getattr(record.selected, kind) if record else None
                per_seed[str(z)].append(chosen.test_metric if chosen else None)
                if chosen and chosen.val_loss < best_val:
                    best_val, best_any = chosen.val_loss, chosen.test_metric
            per_seed["any"].append(best_any)
        per_seed = {k: v for k, v in per_seed.items() if _present(v)}
        if per_seed:
            intervals = {k: mean_interval(_present(v)) for k, v in per_seed.items()}
            summary[kind][model] = {k: m for k, (m, _) in intervals.items()}
            summary["ci95"][kind][model] = {k: h for k, (_, h) in intervals.items()}
            summary["per_seed"][kind][model] = per_seed


def _active_units(runs: dict, config: dict, seeds: list) -> dict:
    """A VAE's active units at each run's best epoch (training.latent_diagnostics), per seed."""
    out = {}
    for model in config["models"]:
        if parse_variant(model).kind != "vae":
            continue
        row = {
            str(z): [
                runs[(model, z, s)]["train"].active_units if runs[(model, z, s)]["train"] else None
                for s in seeds
            ]
            for z in config["z_sizes"]
        }
        row = {z: v for z, v in row.items() if _present(v)}
        if row:
            out[model] = row
    return out


def _add_reconstruction_section(summary: dict, runs: dict, config: dict, seeds: list) -> None:
    """Table VIII: per model, its lowest L1 over z (mean over seeds), relative to the lowest of
    all models."""
    best_l1 = {}
    for model in config["models"]:
        l1s = []
        for z in config["z_sizes"]:
            done = [runs[(model, z, s)]["retrain"] for s in seeds]
            done = [r.l1_after for r in done if r]
            if done:
                l1s.append(float(np.mean(done)))
        if l1s:
            best_l1[model] = min(l1s)
    if best_l1:
        lowest = min(best_l1.values())
        summary["reconstruction_relative"] = {m: lowest / v for m, v in best_l1.items()}
        summary["reconstruction_l1"] = best_l1


def _overheads(runs: dict, models) -> list[float]:
    """Each (model, z, seed)'s images/s of its pixel-wise twin over its own, minus 1."""
    out = []
    for (model, z, seed), r in runs.items():
        if model not in models:
            continue
        pixel = runs.get((parse_variant(model).twin, z, seed), {}).get("train")
        if r["train"] and pixel:
            out.append(pixel.images_per_s / r["train"].images_per_s - 1)
    return out


def _add_speed_section(summary: dict, runs: dict, config: dict) -> None:
    """Training speed per model, and the perceptual loss's overhead over its pixel-wise twin
    (the same kind, z and seed)."""
    for model in config["models"]:
        trains = [r["train"] for (m, _, _), r in runs.items() if m == model and r["train"]]
        if trains:
            summary["seconds_per_epoch"][model] = float(
                np.mean([t.seconds_per_epoch for t in trains])
            )
            summary["images_per_second"][model] = float(np.mean([t.images_per_s for t in trains]))
    summary["training_devices"] = sorted(
        {r["train"].device for r in runs.values() if r["train"] and r["train"].device}
    )
    ratios = _overheads(runs, {"P.AE", "P.VAE"})
    if ratios:
        summary["perceptual_overhead"] = float(np.mean(ratios))
        summary["perceptual_overhead_std"] = float(np.std(ratios))
        summary["perceptual_overhead_pairs"] = len(ratios)


def _scale_used(runs: dict, config: dict) -> float | None:
    """The factor the study's perceptual models (P.AE, P.VAE) trained with (each run records
    the number it used, the calibrated one for "auto"; a study's runs share their training
    images, so they share it), None where none has finished."""
    used = _scales(runs, [m for m in config["models"] if m in ("P.AE", "P.VAE")])
    return float(np.mean(used)) if used else None


def _scales(runs: dict, models) -> list[float]:
    return [
        r["train"].perceptual_scale
        for (m, _, _), r in runs.items()
        if m in models and r["train"] and r["train"].perceptual_scale is not None
    ]


def _variants(runs: dict, config: dict) -> dict:
    """What each model is: kind, loss, network, the twin it is compared with, the scale its
    loss trained with, and its training overhead over the twin."""
    out = {}
    for model in table_order(config["models"]):
        v = parse_variant(model)
        scales, overheads = _scales(runs, [model]), _overheads(runs, [model])
        out[model] = {
            "kind": v.kind,
            "loss": v.loss,
            "network": v.network_of(config["train"]["perceptual_net"]),
            "twin": None if v.pixel else v.twin,
            "scale": float(np.mean(scales)) if scales else None,
            "overhead": float(np.mean(overheads)) if overheads and not v.pixel else None,
        }
    return out


def _comparisons(summary: dict) -> list[dict]:
    """Every non-pixel model over its pixel-wise twin, per predictor kind, on the Any row: the
    ratio of the two models' metrics per seed (both trained on the same data with the same
    seed), its mean and 95% interval, and a verdict that claims a winner only when the interval
    excludes 1."""
    lower_is_better = summary["metric"] == "pixel_distance"
    out = []
    for kind in ("mlp", "linear"):
        for model, twin in comparisons(summary["config"]["models"]):
            a = summary["per_seed"][kind].get(model, {}).get("any")
            b = summary["per_seed"][kind].get(twin, {}).get("any")
            if not a or not b:
                continue
            compared = paired_ratio(a, b, model, twin, lower_is_better)
            if compared is not None:
                out.append({"kind": kind, "perceptual": model, "pixel": twin, **compared})
    return out


def ranking(summary: dict) -> list[dict]:
    """Every model by its Any-row MLP metric (best first), with its interval, its fraction of
    the trivial baseline and its comparison with its twin."""
    lower = summary["metric"] == "pixel_distance"
    ratios = {c["perceptual"]: c for c in summary["comparisons"] if c["kind"] == "mlp"}
    rows = []
    for model in summary["config"]["models"]:
        mean = summary["mlp"].get(model, {}).get("any")
        if mean is None:
            continue
        c = ratios.get(model)
        rows.append(
            {
                "model": model,
                "mlp": mean,
                "mlp_ci95": summary["ci95"]["mlp"][model].get("any"),
                "of_baseline": mean / summary["baseline"] if summary.get("baseline") else None,
                "linear": summary["linear"].get(model, {}).get("any"),
                "vs_twin": None
                if c is None
                else {k: c[k] for k in ("ratio", "ratio_ci95", "verdict")},
            }
        )
    return sorted(rows, key=lambda r: r["mlp"] if lower else -r["mlp"])
