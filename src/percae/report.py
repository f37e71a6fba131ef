"""Tables, summary and figure of a study, rebuilt from the files it saved (no training):
results.csv, tables.md (analogues of the paper's Tables II-VIII, the paper's numbers
beside them), summary.json and reconstructions.png (the Fig. 6 analogue)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from .config import (
    ConfigError,
    JsonConfig,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
    remove_stale_temporary_files,
)
from .layout import RunFiles, StudyFiles
from .perceptual_networks import describe_weights
from .predictors import Baseline, PredictorRecord
from .provenance import SCHEMA_VERSION
from .statistics import mean_interval, paired_ratio
from .study.config import MODEL_VARIANTS, PIXEL_OF, StudyConfig
from .study.data import StudyNotes
from .study.unit import RetrainRecord
from .training import TrainingRecord

MODELS = tuple(MODEL_VARIANTS)  # the paper's column order

# The paper's numbers (Tables II-VIII): position error in pixels, accuracy as a fraction.
PAPER = {
    "lunarlander": {
        "mlp": {
            "32": [13.44, 12.70, 2.11, 1.28],
            "64": [13.28, 13.22, 1.60, 1.15],
            "128": [13.31, 13.31, 1.44, 1.15],
            "256": [13.22, 13.28, 1.44, 1.28],
            "any": [13.22, 12.70, 1.44, 1.15],
        },
        "linear": {
            "32": [13.73, 12.67, 7.23, 7.46],
            "64": [13.60, 12.99, 6.85, 5.50],
            "128": [14.18, 12.96, 6.72, 5.54],
            "256": [15.17, 13.38, 6.40, 5.18],
            "any": [13.60, 12.67, 6.40, 5.18],
        },
        "reconstruction_relative": [0.93, 0.77, 1.00, 0.73],
        "tables": ("II", "V"),
    },
    "stl10": {
        "mlp": {
            "64": [0.385, 0.419, 0.614, 0.634],
            "128": [0.390, 0.424, 0.626, 0.623],
            "256": [0.415, 0.389, 0.634, 0.648],
            "512": [0.450, 0.392, 0.633, 0.644],
            "any": [0.450, 0.424, 0.634, 0.648],
        },
        "linear": {
            "64": [0.346, 0.368, 0.563, 0.581],
            "128": [0.354, 0.397, 0.597, 0.574],
            "256": [0.402, 0.436, 0.595, 0.637],
            "512": [0.444, 0.459, 0.601, 0.649],
            "any": [0.444, 0.459, 0.601, 0.649],
        },
        "reconstruction_relative": [1.00, 0.92, 0.60, 0.44],
        "tables": ("III", "VI"),
    },
    "svhn": {
        "mlp": {
            "32": [0.765, 0.768, 0.770, 0.696],
            "64": [0.815, 0.818, 0.822, 0.768],
            "128": [0.819, 0.827, 0.840, 0.812],
            "any": [0.819, 0.827, 0.840, 0.812],
        },
        "linear": {
            "32": [0.255, 0.320, 0.616, 0.589],
            "64": [0.248, 0.412, 0.672, 0.663],
            "128": [0.293, 0.475, 0.706, 0.712],
            "any": [0.293, 0.475, 0.706, 0.712],
        },
        "reconstruction_relative": [1.00, 0.97, 0.75, 0.57],
        "tables": ("IV", "VII"),
    },
}


def _check_images(path: Path, recon: bool = False) -> None:
    """originals.npy (uint8 (N, S, S, 3)) or a run's reconstructions.npy (uint8 (2, N, S, S, 3):
    before and after retraining) as percae writes them; else one line naming the file."""
    try:
        images = np.load(path)  # never unpickles
        ndim = 5 if recon else 4
        ok = images.dtype == np.uint8 and images.ndim == ndim and images.shape[-1] == 3
        ok = ok and (not recon or images.shape[0] == 2)
    except (OSError, ValueError, EOFError) as e:
        ok, images = False, f"unreadable ({type(e).__name__})"
    if not ok:
        shape = images if isinstance(images, str) else f"{images.dtype} {images.shape}"
        raise ConfigError(
            f"result file {path} is not percae's images ({shape}); it is damaged or was edited: "
            "delete it (and the files of that run after it) and rerun `percae reproduce` with "
            "the same settings"
        )


def _read(record: type[JsonConfig], path: Path):
    """A result file as its record (`JsonConfig.read_result`: every key, type and rule
    checked), None where it is not written yet."""
    return record.read_result(path) if path.exists() else None


def collect(results: Path) -> dict:
    """Everything a report needs, read from a results folder."""
    files = StudyFiles(results)
    if not files.config.exists():
        raise ConfigError(
            f"{results} holds no study (no study_config.json); run `percae reproduce` first"
        )
    record = read_json(files.provenance, "result file") if files.provenance.exists() else None
    schema = record.get("schema") if isinstance(record, dict) else None
    if schema is not None and (not isinstance(schema, int) or schema > SCHEMA_VERSION):
        raise ConfigError(
            f"{results} was written by a newer percae (results schema {schema}; this percae reads "
            f"{SCHEMA_VERSION} and older): upgrade percae to report it"
        )
    study = StudyConfig.load(files.config)
    config = study.to_dict()
    runs = {}
    for seed in study.training_seeds():
        for model in study.models:
            for z in study.z_sizes:
                runs[(model, z, seed)] = _run_files(files.run(model, z, seed))
    # Every file the report reads is checked here, before it writes anything.
    if files.originals.exists():
        _check_images(files.originals)
    for run in runs.values():
        if run["recon"].exists():
            _check_images(run["recon"], recon=True)
    return {
        "config": config,
        "perceptual_net": study.perceptual_net,
        "seeds": list(study.training_seeds()),
        "baseline": _read(Baseline, files.baseline),
        "notes": _read(StudyNotes, files.notes) or StudyNotes(data=()),
        "runs": runs,
        "provenance": record,
    }


def _run_files(run: RunFiles) -> dict:
    return {
        "train": _read(TrainingRecord, run.train_result),
        "predictors": _read(PredictorRecord, run.predictors),
        "retrain": _read(RetrainRecord, run.retrain_result),
        "recon": run.reconstructions,
        "test_predictions": run.test_predictions("mlp"),
        "history": run.history,
    }


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
        "perceptual_scale": _scale_used(runs),
        "complete": all(r["retrain"] is not None for r in runs.values()),
        "config": config,
        "provenance": info.get("provenance"),  # None: a study written before percae recorded it
    }
    for kind in ("mlp", "linear"):
        _add_metric_section(summary, kind, runs, config, seeds)
    summary["comparisons"] = _comparisons(summary)
    summary["active_units"] = _active_units(runs, config, seeds)
    _add_reconstruction_section(summary, runs, config, seeds)
    _add_speed_section(summary, runs, config)
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
        if MODEL_VARIANTS[model][0] != "vae":
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
    ratios = []
    for (model, z, seed), r in runs.items():
        pixel = runs.get((PIXEL_OF.get(model), z, seed), {}).get("train")
        if r["train"] and pixel:
            ratios.append(pixel.images_per_s / r["train"].images_per_s - 1)
    if ratios:
        summary["perceptual_overhead"] = float(np.mean(ratios))
        summary["perceptual_overhead_std"] = float(np.std(ratios))
        summary["perceptual_overhead_pairs"] = len(ratios)


def _scale_used(runs: dict) -> float | None:
    """The perceptual term's factor the perceptual runs trained with (each run records the
    number it used, the calibrated one for "auto"; a study's runs share their training images,
    so they share it), None where no perceptual run has finished."""
    used = [
        r["train"].perceptual_scale
        for r in runs.values()
        if r["train"] and r["train"].perceptual_scale is not None
    ]
    return float(np.mean(used)) if used else None


def _comparisons(summary: dict) -> list[dict]:
    """Perceptual over pixel-wise, per predictor kind, on the Any row: the ratio of the two
    models' metrics per seed (both trained on the same data with the same seed), its mean
    and 95% interval, and a verdict that claims a winner only when the interval excludes 1."""
    lower_is_better = summary["metric"] == "pixel_distance"
    out = []
    for kind in ("mlp", "linear"):
        for perceptual, pixel in PIXEL_OF.items():
            a = summary["per_seed"][kind].get(perceptual, {}).get("any")
            b = summary["per_seed"][kind].get(pixel, {}).get("any")
            if not a or not b:
                continue
            compared = paired_ratio(a, b, perceptual, pixel, lower_is_better)
            if compared is not None:
                out.append({"kind": kind, "perceptual": perceptual, "pixel": pixel, **compared})
    return out


def _fmt(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%" if metric == "accuracy" else f"{value:.2f}"


def _fmt_interval(value, half, metric: str) -> str:
    if half is None or value is None:
        return _fmt(value, metric)
    return f"{_fmt(value, metric)} ± {_fmt(half, metric)}"


def _of_baseline(value, baseline, metric: str) -> str:
    """An error as a fraction of the trivial baseline's, in parentheses (errors only: the
    paper's pixel units are unknown, a fraction of the baseline compares across them)."""
    if metric != "pixel_distance" or value is None or not baseline:
        return ""
    return f" ({value / baseline:.2f})"


def _table(summary: dict, kind: str, paper: dict | None) -> list[str]:
    metric, models = summary["metric"], [m for m in MODELS if m in summary["config"]["models"]]
    head = ["z size", *models] + ([f"paper {m}" for m in models] if paper else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for z in [*map(str, summary["config"]["z_sizes"]), "any"]:
        cells = [z.capitalize() if z == "any" else z]
        cells += [
            _fmt_interval(
                summary[kind].get(m, {}).get(z), summary["ci95"][kind].get(m, {}).get(z), metric
            )
            + _of_baseline(summary[kind].get(m, {}).get(z), summary["baseline"], metric)
            for m in models
        ]
        if paper:
            row = paper[kind].get(z)
            cells += [_fmt(row[MODELS.index(m)], metric) if row else "–" for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    base = ["Baseline", *[_fmt(summary["baseline"], metric)] * len(models)] + (
        ["–"] * len(models) if paper else []
    )
    lines.append("| " + " | ".join(base) + " |")
    return lines


def build_tables(summary: dict, notes: StudyNotes | None = None) -> str:
    ds, metric = summary["dataset"], summary["metric"]
    paper = PAPER.get(ds)
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
    )
    scale, setting = summary.get("perceptual_scale"), summary["config"]["train"]["perceptual_scale"]
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
            f"{summary['config']['train']['kl_weight']}.",
        ]
    notes = notes or StudyNotes(data=())
    if notes.perceptual_net:
        out += ["", f"Note: {notes.perceptual_net}."]
    models, seeds = summary["config"]["models"], summary["seeds"]
    if len(models) < len(MODELS):
        out += [
            "",
            f"Models: {', '.join(models)} (of the paper's {', '.join(MODELS)}; `--models` runs any "
            "of them).",
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
        out += [
            "",
            "The Any row takes, per model, the z whose selected predictor has the lowest "
            "validation loss (the paper's Any column equals its best test value in every column "
            "checked: a selection on the test set, which percae does not make). Baseline: a "
            f"trivial predictor that {baseline_text}."
            + (
                " In parentheses: the error as a fraction of the baseline's (the paper's baseline "
                "is not reported; its AE rows, about 13.3 px at every z, look like one)."
                if metric == "pixel_distance"
                else ""
            ),
        ]
    rel = summary.get("reconstruction_relative") or {}
    if rel:
        models = [m for m in MODELS if m in rel]
        when = (
            "after decoder retraining"
            if summary["config"]["retrain_epochs"] > 0
            else "as trained, without decoder retraining (--retrain-epochs 0)"
        )
        out += [
            "",
            f"## Table VIII analogue: reconstruction {when}, relative to the autoencoder with the "
            "lowest L1 error",
            "",
        ]
        out.append("| | " + " | ".join(models) + " |")
        out.append("|" + "---|" * (len(models) + 1))
        out.append("| ours | " + " | ".join(f"{100 * rel[m]:.0f}%" for m in models) + " |")
        out.append(
            "| L1 error | "
            + " | ".join(f"{summary['reconstruction_l1'][m]:.4f}" for m in models)
            + " |"
        )
        if paper:
            label = (
                "paper"
                if summary["config"]["retrain_epochs"] > 0
                else "paper (after decoder retraining)"
            )
            out.append(
                f"| {label} | "
                + " | ".join(
                    f"{100 * paper['reconstruction_relative'][MODELS.index(m)]:.0f}%"
                    for m in models
                )
                + " |"
            )
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
    out += ["", "## Perceptual vs pixel-wise", ""]
    for c in summary["comparisons"]:
        ratio = f"{c['ratio']:.2f}" + (
            f" (95% CI {c['ratio_ci95'][0]:.2f}–{c['ratio_ci95'][1]:.2f})"
            if c["ratio_ci95"]
            else ""
        )
        out.append(
            f"- {'MLP' if c['kind'] == 'mlp' else 'Linear'} (Any): {c['perceptual']} / "
            f"{c['pixel']} = {ratio}: {c['verdict']}"
        )
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
        ips = summary["images_per_second"]
        out.append("")
        out.append("Training throughput (images/s): " + ", ".join(f"{m} {ips[m]:.0f}" for m in ips))
    return "\n".join(out) + "\n"


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


def build_figure(results: Path, info: dict) -> Path | None:
    """Fig. 6 analogue: originals, then pixel-wise and perceptual reconstructions before
    and after decoder retraining (each model at its smallest z)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    originals_path = StudyFiles(results).originals
    if not originals_path.exists():
        return None
    originals = np.load(originals_path)
    z, seed = min(info["config"]["z_sizes"]), info["seeds"][0]
    rows = [("original", originals)]
    for model in MODELS:
        r = info["runs"].get((model, z, seed))
        if r and r["recon"].exists():
            before, after = np.load(r["recon"])
            retrained = info["config"]["retrain_epochs"] > 0
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
        if info["config"]["retrain_epochs"] > 0
        else "as trained (no decoder retraining)"
    )
    fig.suptitle(f"Reconstructions (z = {z}, seed {seed}); {what}", fontsize=8)
    fig.tight_layout()
    path = StudyFiles(results).figure
    atomic_write_bytes(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)
    return path


FIGURES = {
    "metric_vs_z": "the metric against z, 95% intervals over seeds, the paper's values dashed",
    "ratios": "perceptual over pixel-wise, per comparison, with its 95% interval",
    "positions": "predicted against true position, the selected MLP on the test set",
    "training_curves": "validation loss per epoch",
}


def build_latex(summary: dict) -> str:
    """tables.tex: the error or accuracy tables in booktabs, mean ± 95% half-width over seeds."""
    metric, models = summary["metric"], [m for m in MODELS if m in summary["config"]["models"]]
    what = "Test error (px)" if metric == "pixel_distance" else "Test accuracy (\\%)"
    out = ["% percae: needs \\usepackage{booktabs}"]
    for kind, title in (("mlp", "best MLP"), ("linear", "best linear regressor")):
        out += [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{what} of the {title} on {summary['dataset']}, "
            f"mean $\\pm$ 95\\% interval over seeds {', '.join(map(str, summary['seeds']))}.}}",
            "\\begin{tabular}{l" + "r" * len(models) + "}",
            "\\toprule",
            "$z$ & " + " & ".join(models) + " \\\\",
            "\\midrule",
        ]
        for z in [*map(str, summary["config"]["z_sizes"]), "any"]:
            cells = [
                _fmt_interval(
                    summary[kind].get(m, {}).get(z), summary["ci95"][kind].get(m, {}).get(z), metric
                )
                .replace("±", "$\\pm$")
                .replace("%", "\\%")
                for m in models
            ]
            out.append(("Any" if z == "any" else z) + " & " + " & ".join(cells) + " \\\\")
        out += [
            "\\midrule",
            "Baseline & "
            + " & ".join([_fmt(summary["baseline"], metric).replace("%", "\\%")] * len(models))
            + " \\\\",
            "\\bottomrule",
            "\\end{tabular}",
            "\\end{table}",
            "",
        ]
    return "\n".join(out)


def write_report(results: str | Path) -> dict:
    """Rebuild results.csv, tables.md, tables.tex, summary.json, reconstructions.png and the
    figures; return the summary. The caller holds `results` (`config.exclusive_use`)."""
    from .figures import write_figures

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
