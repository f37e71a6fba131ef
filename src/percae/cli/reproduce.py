"""`percae reproduce`: a whole study (`reproduce.run_study`) from a preset or a study's own
settings, on this machine or on Ray, and its tables printed."""

from __future__ import annotations

import functools

import click

from ..config import ConfigError
from ..data import DATASETS  # the registry alone: numpy, no torch
from ..layout import StudyFiles
from .options import parse_seeds, perceptual_options


@click.command()
@click.argument("dataset", type=click.Choice(list(DATASETS)), required=False)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="A study's settings as JSON (the study_config.json a study saves): rerun it; options "
    "given as well change those settings.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Results folder [results/DATASET-PRESET].",
)
@click.option(
    "--preset", type=click.Choice(["paper", "quick"]), default=None, help="[default: paper]"
)
@click.option(
    "--root",
    default=None,
    type=click.Path(file_okay=False),
    help="Dataset folder (LunarLander: the collection, generated there if missing).",
)
@click.option("--z", "z_sizes", default=None, help="Latent sizes, comma-separated (e.g. 32,64).")
@click.option(
    "--models",
    default=None,
    help="Comma-separated models: AE, VAE, P.AE, P.VAE (the paper's), AE[LOSS] or VAE[LOSS] "
    "(LOSS: ssim, ms-ssim, lap1), P.AE[NET] or P.VAE[NET] (the perceptual loss with NET, as "
    "--perceptual-net names it), e.g. 'AE,P.AE,AE[ssim],P.AE[alexnet-random:relu4]'.",
)
# A setting of the study's training or predictors is named PART__NAME (StudyConfig.updated).
@click.option(
    "--epochs", "train__epochs", default=None, type=int, help="Autoencoder epochs (at most)."
)
@click.option("--predictor-epochs", "predictor__epochs", default=None, type=int)
@click.option("--retrain-epochs", default=None, type=int)
@click.option(
    "--batch-size",
    "train__batch_size",
    default=None,
    type=int,
    help="Autoencoder batch size (training and retraining).",
)
@click.option(
    "--lr", "train__lr", default=None, type=float, help="Autoencoder learning rate (Adam)."
)
@functools.partial(perceptual_options, part="train__")
@click.option(
    "--kl-weight",
    "train__kl_weight",
    default=None,
    type=float,
    help="Gamma, the KL term's weight, of every VAE (default: the paper's).",
)
@click.option(
    "--rollouts", default=None, type=int, help="LunarLander collection size, when generated."
)
@click.option("--steps", default=None, type=int)
@click.option(
    "--image-size",
    default=None,
    type=int,
    help="64 + 16n px: resizes folder datasets; sets a LunarLander collection's size when "
    "generated.",
)
@click.option("--max-autoencoder-images", default=None, type=int)
@click.option(
    "--seed",
    default=None,
    type=int,
    help="The data's seed (collection, splits) and the first training seed.",
)
@click.option(
    "--seeds",
    default=None,
    help="Training seeds: a count N (seed, seed+1, ...) or a comma-separated list; "
    "tables show mean ± 95% CI.",
)
@click.option("--device", "train__device", default=None, help="auto, cpu, cuda or cuda:N.")
@click.option("--progress/--no-progress", default=True)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: the units one after another here; ray: each (model, z, seed) a Ray task.",
)
@click.option(
    "--workers",
    default=None,
    type=int,
    help="local: units at once, each in a process of one thread (its results are then the "
    "same for any number above 1) [the quick presets: 2; else 1, all threads in this process].",
)
@click.option(
    "--address",
    default=None,
    help="Ray: an existing cluster's address (default: start a local Ray).",
)
@click.option(
    "--cpus-per-run", default=1.0, show_default=True, type=float, help="Ray: CPUs per unit."
)
@click.option(
    "--gpus-per-run",
    default=0.0,
    show_default=True,
    type=float,
    help="Ray: GPUs per unit (0.25: four units share a GPU).",
)
@click.option(
    "--tensorboard",
    "tensorboard_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Also log every training's epochs and each run's reconstructions to TensorBoard here.",
)
def reproduce(
    dataset,
    config_file,
    out,
    preset,
    progress,
    z_sizes,
    models,
    seeds,
    executor,
    workers,
    address,
    cpus_per_run,
    gpus_per_run,
    tensorboard_dir,
    **settings,
):
    """Run the whole study on DATASET and write its tables (resumable)."""
    # Every option in `settings` is the StudyConfig setting of its name, PART__NAME for a part's
    # (tests/test_cli.py checks it); those not given are None and take the preset's value.
    from ..study.config import StudyConfig
    from ..study.presets import preset_config
    from ..reproduce import run_study

    def ints(text):
        try:
            return tuple(int(v) for v in text.split(","))
        except ValueError:
            raise ConfigError(f"--z takes comma-separated integers, got {text!r}") from None

    base = None
    if config_file is not None:
        if preset is not None:
            raise ConfigError(
                "--preset and --config: the config file holds the whole study; give one of them"
            )
        base = StudyConfig.load(config_file)
        if dataset is not None and dataset != base.dataset:
            raise ConfigError(
                f"{config_file} is a study of {base.dataset}, not {dataset}; drop DATASET or the "
                "file"
            )
    elif dataset is None:
        raise ConfigError(
            "give the DATASET to study (lunarlander, stl10, svhn, folder), or --config FILE"
        )
    first_seed = settings["seed"] if settings["seed"] is not None else base.seed if base else 0
    settings.update(
        z_sizes=ints(z_sizes) if z_sizes else None,
        models=tuple(models.split(",")) if models else None,
        seeds=parse_seeds(seeds, first_seed) if seeds else None,
    )
    config = (
        base.updated(**settings)
        if base is not None
        else preset_config(dataset, preset or "paper", **settings)
    )
    dataset, preset = config.dataset, config.preset
    out = out or f"results/{dataset}-{preset}"
    if executor == "ray":
        from ..cluster import RayExecutor

        if workers is not None:
            raise ConfigError("--workers is for --executor local (Ray has --cpus-per-run)")
        runner = RayExecutor(address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
    else:
        from ..study.executors import LocalExecutor
        from ..study.presets import preset_workers

        if address is not None or cpus_per_run != 1.0 or gpus_per_run != 0.0:
            raise ConfigError("--address, --cpus-per-run and --gpus-per-run are for --executor ray")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        runner = LocalExecutor(workers if workers is not None else preset_workers(config))
    board = None
    if tensorboard_dir is not None:
        from ..tensorboard_log import TensorBoardLog

        board = TensorBoardLog(tensorboard_dir)
    try:
        run_study(
            config,
            out,
            progress=progress,
            executor=runner,
            on_epoch=(lambda unit, phase, row: board.epoch(unit.name, row, phase))
            if board
            else None,
        )
        if board is not None:
            from ..tensorboard_log import log_study_reconstructions

            log_study_reconstructions(board, out)
    finally:
        if board is not None:
            board.close()
    click.echo("")
    click.echo(StudyFiles(out).tables.read_text())
    click.echo(f"results: {out}/tables.md, summary.json, results.csv, reconstructions.png")
