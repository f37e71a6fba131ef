"""`percae train`'s job as a function: an autoencoder trained on a dataset's autoencoder part,
split 80/20 by group, into a run folder this process holds while it trains."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from ..config import ConfigError
from ..data import ImageSet, load_study_data, split
from ..files import check_output_folder, exclusive_use
from ..layout import RunFiles
from ..model import MAX_LATENT, Autoencoder, AutoencoderConfig, build_autoencoder
from ..perceptual_networks import describe_weights
from .config import TrainConfig
from .loop import train_autoencoder
from .records import TrainingRecord

LOG = logging.getLogger(__name__)


def train_on_dataset(
    dataset: str,
    root: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig,
    kind: str = "ae",
    z: int | None = None,
    image_size: int | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = LOG.info,
) -> tuple[Autoencoder, ImageSet, TrainingRecord]:
    """Train a `kind` autoencoder (z = `z`, else AutoencoderConfig's) on `dataset`'s autoencoder
    part at `root` into the run folder `out` (resumed where interrupted); returns the trained
    model, its validation images and how the training went. Every setting, the loss (its network
    built) and the data are checked before the folder is made."""
    check_output_folder(out)
    if RunFiles(out).train_result.exists():
        raise ConfigError(f"{out} already holds a trained run; choose another --out")
    config.validate()
    if z is not None and not 1 <= z <= MAX_LATENT:
        raise ConfigError(f"--z must be between 1 and {MAX_LATENT}, got {z}")
    loss_fn = config.build_loss()  # a bad network, layer or weights file: refused now
    study = load_study_data(dataset, root, seed=config.seed, image_size=image_size)
    size = {} if z is None else {"latent_dim": z}
    model_config = AutoencoderConfig(kind, image_size=study.autoencoder.image_size, **size)
    model = build_autoencoder(model_config, seed=config.seed)
    train, val = split(study.autoencoder, 0.2, config.seed)
    # Said once the run has begun (its first line, an epoch's or "resuming"): a refusal to resume
    # is then the command's one line.
    pending = [
        f"training {kind} z={model_config.latent_dim} with {config.loss} loss"
        + (
            f" ({config.perceptual_net}, weights: "
            f"{describe_weights(config.perceptual_net, config.perceptual_weights)})"
            if loss_fn.uses_network
            else ""
        )
        + f" on {len(train)} images, validating on {len(val)}"
    ]

    def said(line: str) -> None:
        while pending:
            log(pending.pop())
        log(line)

    Path(out).mkdir(parents=True, exist_ok=True)
    with exclusive_use(out, "--out"):
        record = train_autoencoder(
            model, train, val, config, run_dir=out, log=said, loss_fn=loss_fn, on_epoch=on_epoch
        )
    return model, val, record
