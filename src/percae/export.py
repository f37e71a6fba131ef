"""A run folder as a shareable model (`percae export`): the weights as safetensors, the
configs, the results, and a model card (README.md) with the data, settings, metrics and
provenance that a reader of the folder alone needs, and how to load the encoder in plain
PyTorch."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .config import ConfigError
from .files import atomic_write_text, check_output_folder, filled_in_place, read_json
from .layout import MODEL_CARD, RunFiles, StudyFiles
from .loss import LOSSES
from .model import encoder_grid, load_autoencoder, save_autoencoder


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


def loss_words(train: dict) -> str:
    """The loss a run trained with, as its record names it."""
    loss = train.get("loss", "?")
    if loss not in LOSSES:
        return f"{loss} loss"
    if LOSSES[loss].uses_network:
        return f"perceptual loss ({train.get('perceptual_net')})"
    return LOSSES[loss].description


def plain_pytorch(side: int, z: int, size: int) -> list[str]:
    """Loading the encoder without percae: its layers, its input and the embedding (mu)."""
    return [
        "```python",
        "import numpy as np",
        "import torch",
        "from safetensors.torch import load_file",
        "from torch import nn",
        "",
        'state = load_file("THIS_FOLDER/model.safetensors")',
        "layers, channels = [], 3",
        "for width in (32, 64, 128, 256):  # 4 x 4 convolutions, stride 2, no padding",
        "    layers += [nn.Conv2d(channels, width, 4, stride=2), nn.BatchNorm2d(width), nn.ReLU()]",
        "    channels = width",
        "encoder = nn.Sequential(*layers, nn.Flatten())",
        f"mu = nn.Linear(256 * {side} * {side}, {z})",
        'encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})',
        'mu.load_state_dict({k[3:]: v for k, v in state.items() if k.startswith("mu.")})',
        "encoder.eval()",
        f"# images: uint8 RGB (N, {size}, {size}, 3); the model takes float (N, 3, {size}, {size})"
        " in [0, 1]",
        "images = np.zeros((2, %d, %d, 3), np.uint8)" % (size, size),
        "x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255",
        "with torch.no_grad():",
        f"    z = mu(encoder(x))  # (N, {z}): the embedding, the encoder's mean",
        "```",
    ]


def model_card(run: Path, model_config: dict) -> str:
    files = RunFiles(run)
    train = read_json(files.train_config, "training config") if files.train_config.exists() else {}
    result = read_json(files.train_result, "training result") if files.train_result.exists() else {}
    study = _study_of(run)
    kind, z, size = model_config["kind"], model_config["latent_dim"], model_config["image_size"]
    # A study's run folder is MODEL_zZ_seedS: its model's name says its kind and loss.
    model = run.name.rsplit("_z", 1)[0] if study else kind.upper()
    out = [
        f"# percae {model}, z = {z}, {size} px images, {loss_words(train)}",
        "",
        f"An image autoencoder trained with percae, exported from `{run}`.",
        "The embedding of an image is the encoder's mean (mu).",
        "",
        "## Load",
        "",
        "With percae:",
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
        "In plain PyTorch (the encoder alone; `safetensors` reads the weights):",
        "",
        *plain_pytorch(encoder_grid(size), z, size),
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
    if train.get("loss") in LOSSES and LOSSES[train["loss"]].scaled:
        net = (
            f"Perceptual network: {train.get('perceptual_net')}; the"
            if LOSSES[train["loss"]].uses_network
            else "The"
        )
        out += ["", f"{net} loss scaled by {train.get('perceptual_scale')}."]
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
        metric = (
            "accuracy" if predictors.get("task") == "classification" else "mean distance in pixels"
        )
        for kind_name, selected in predictors.get("selected", {}).items():
            out.append(
                f"- {kind_name}: {selected.get('predictor')}, test metric "
                f"{selected.get('test_metric')} ({metric})"
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
    training config, result and history, its predictors where a study fitted them, README.md.
    Built in a hidden folder beside `out` and renamed into place: a killed export leaves no half
    a model, and the next export removes what it left."""
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
    busy = lambda owner: ConfigError(  # noqa: E731
        f"another percae is exporting into {out} ({owner}); wait for it to end, or choose "
        "another --out"
    )
    with filled_in_place(out, busy) as partial:
        save_autoencoder(model, partial)
        exported = RunFiles(partial)
        for name in ("train_config", "train_result", "history", "predictors"):
            if getattr(files, name).exists():
                shutil.copyfile(getattr(files, name), getattr(exported, name))
        for kind in ("mlp", "linear"):
            if files.predictor(kind).exists():
                shutil.copyfile(files.predictor(kind), exported.predictor(kind))
        atomic_write_text(partial / MODEL_CARD, card)
    return out
