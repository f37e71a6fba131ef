"""`percae train`: one autoencoder on a dataset's autoencoder part (`training.train_on_dataset`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import ConfigError
from .options import given, perceptual_options


@click.command()
@click.option(
    "--data",
    "data_root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset folder (a LunarLander collection, or --dataset's root).",
)
@click.option("--dataset", default="lunarlander", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--model", type=click.Choice(["ae", "vae"]), default="ae", show_default=True)
@click.option("--z", default=None, type=int, help="Latent size [64].")
@click.option(
    "--loss",
    default=None,
    help="pixel, perceptual (--perceptual-net), ssim, ms-ssim or lap1 [pixel].",
)
@perceptual_options
@click.option("--epochs", default=None, type=int, help="[50]")
@click.option("--batch-size", default=None, type=int, help="[512]")
@click.option("--lr", default=None, type=float, help="Adam's learning rate [0.001].")
@click.option(
    "--kl-weight",
    "kl_weight",
    default=None,
    type=float,
    help="Gamma, the KL term's weight (VAE) [0.001, for the calibrated scale].",
)
@click.option("--seed", default=None, type=int, help="[0]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [auto].")
@click.option("--image-size", default=None, type=int, help="64 + 16n px; resizes folder datasets.")
@click.option(
    "--tensorboard",
    "tensorboard_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Also log each epoch (losses, images/s) and the reconstructions to TensorBoard here.",
)
def train(data_root, dataset, out, model, z, image_size, tensorboard_dir, **settings):
    """Train an autoencoder on a dataset's autoencoder part (80/20 train/validation)."""
    # Every option in `settings` is the TrainConfig field of its name (tests/test_cli.py checks it).
    from ..loss import LOSSES
    from ..training import TrainConfig
    from ..training.dataset import train_on_dataset

    loss = settings["loss"] or TrainConfig.loss
    if loss in LOSSES and not LOSSES[loss].uses_network:
        named = [o for o in ("perceptual_net", "perceptual_weights") if settings[o] is not None]
        if named:
            raise ConfigError(
                f"--{named[0].replace('_', '-')} is for the perceptual loss, and this run trains "
                f"with {loss} loss: add --loss perceptual, or drop --{named[0].replace('_', '-')}"
            )
    board = None
    if tensorboard_dir is not None:  # checked now; it writes nothing before the first epoch
        from ..tensorboard_log import TensorBoardLog

        board = TensorBoardLog(tensorboard_dir)
    name = Path(out).name
    # Options not given are None: TrainConfig's defaults.
    autoencoder, val, result = train_on_dataset(
        dataset,
        data_root,
        out,
        TrainConfig(**given(settings)),
        kind=model,
        z=z,
        image_size=image_size,
        on_epoch=(lambda row: board.epoch(name, row)) if board else None,
    )
    if board is not None:
        board.validation_reconstructions(
            name, autoencoder, val, result.best_epoch, settings["device"] or "auto"
        )
        board.close()
    click.echo(
        f"best epoch {result.best_epoch} (val {result.best_val_loss:.4g}); "
        f"{result.images_per_s:.0f} images/s; run saved in {out}"
    )
