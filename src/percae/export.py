"""A run folder as a shareable model (`percae export`): the weights as safetensors, the
configs, the results, and a model card (README.md) with the data, settings, metrics and
provenance that a reader of the folder alone needs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .config import ConfigError, atomic_write_text, check_output_folder, read_json
from .layout import RunFiles, StudyFiles
from .model import load_autoencoder, save_autoencoder

CARD = "README.md"


def _study_of(run: Path) -> dict | None:
    """The settings of the study a run belongs to (RESULTS/runs/NAME), None for a `percae train`
    run."""
    study = StudyFiles(run.parent.parent)
    return (
        read_json(study.config, "study config")
        if run.parent.name == "runs" and study.config.exists()
        else None
    )


def _table(settings: dict) -> list[str]:
    return [
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | {json.dumps(v)} |" for k, v in settings.items()),
    ]


def model_card(run: Path, model_config: dict) -> str:
    files = RunFiles(run)
    train = read_json(files.train_config, "training config") if files.train_config.exists() else {}
    result = read_json(files.train_result, "training result") if files.train_result.exists() else {}
    study = _study_of(run)
    kind, z, size = model_config["kind"], model_config["latent_dim"], model_config["image_size"]
    loss = train.get("loss", "?")
    out = [
        f"# percae {kind.upper()}, z = {z}, {size} px images, {loss} loss",
        "",
        f"An image autoencoder trained with percae, exported from `{run}`.",
        "The embedding of an image is the encoder's mean (mu).",
        "",
        "## Load",
        "",
        "```python",
        "from percae.model import load_autoencoder",
        "from percae.embeddings import encode_images",
        "",
        'model = load_autoencoder("THIS_FOLDER")  '
        "# safetensors weights + model_config.json, loaded strictly",
        "z = encode_images(model, images)  "
        f"# images: uint8 (N, {size}, {size}, 3) or float (N, 3, {size}, {size})",
        "```",
        "",
        "## Data",
        "",
    ]
    if study:
        out.append(
            f"A `percae reproduce {study['dataset']}` study (its settings below; `root`: "
            f"{study.get('root') or 'a collection generated into the study folder'}); the "
            "autoencoder part of its data, 80% for training and 20% for validation."
        )
    else:
        out.append(
            "A `percae train` run: the autoencoder part of the dataset given with `--data` (not "
            "recorded in the run), 80% for training and 20% for validation."
        )
    if loss == "perceptual":
        out += [
            "",
            f"Perceptual network: {train.get('perceptual_net')}; the term scaled by "
            f"{train.get('perceptual_scale')}.",
        ]
    out += ["", "## Training settings", "", *_table(train)]
    if study:
        out += ["", "## Study settings", "", *_table(study)]
    out += ["", "## Results", ""]
    out += [
        f"- best epoch {result.get('best_epoch')} of {result.get('epochs_run')}; validation loss "
        f"{result.get('best_val_loss')}"
        + (f"; active units {result['active_units']}" if "active_units" in result else "")
    ]
    if files.predictors.exists():
        predictors = read_json(files.predictors, "predictor results")
        for kind_name, selected in predictors.get("selected", {}).items():
            out.append(
                f"- {kind_name}: {selected.get('predictor')}, test metric "
                f"{selected.get('test_metric')} "
                f"({'accuracy' if predictors.get('task') == 'classification' else 'mean distance in pixels'})"  # noqa: E501
            )
    provenance = result.get("provenance") or {}
    out += [
        "",
        "## Provenance",
        "",
        f"- device: {provenance.get('device', result.get('device'))}",
        f"- versions: {json.dumps(provenance.get('versions', {}))}",
        "",
    ]
    return "\n".join(out)


def export_run(run: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write `run`'s model into `out` (a new folder): model.safetensors, model_config.json, the
    training config, result and history, its predictors where a study fitted them, README.md."""
    run, out = Path(run), Path(out)
    files = RunFiles(run)
    if not files.train_result.exists():
        raise ConfigError(
            f"{run} holds no finished training (no {files.train_result.name}); finish it first"
        )
    model = load_autoencoder(run)  # refused here if the weights are broken: nothing is written
    check_output_folder(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; choose a new folder")
    card = model_card(run, model.config.to_dict())
    # Built beside `out` and renamed into place: a killed export leaves no half a model.
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _write(run, files, model, card, partial)
        if out.exists():
            out.rmdir()  # (empty, checked above)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _write(run: Path, files: RunFiles, model, card: str, out: Path) -> None:
    save_autoencoder(model, out)
    exported = RunFiles(out)
    for name in ("train_config", "train_result", "history", "predictors"):
        if getattr(files, name).exists():
            shutil.copyfile(getattr(files, name), getattr(exported, name))
    for kind in ("mlp", "linear"):
        if files.predictor(kind).exists():
            shutil.copyfile(files.predictor(kind), exported.predictor(kind))
    atomic_write_text(out / CARD, card)
