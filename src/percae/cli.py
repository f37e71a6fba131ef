"""The `percae` command line: a thin layer over the Python API."""

from __future__ import annotations

import functools
import logging
import signal
import sys
from pathlib import Path

import click

from .config import STOPPING_SIGNALS, ConfigError, check_output_folder, exclusive_use
from .layout import StudyFiles


def _errors():
    from .data import DataError
    from .perceptual_networks import PerceptualNetworkUnavailable
    from .training import TrainingDiverged

    return (ConfigError, DataError, PerceptualNetworkUnavailable, TrainingDiverged, FileExistsError)


class _Group(click.Group):
    """Turns the library's own errors, the system's refusals to read or write a file, and
    click's usage errors into one clear line and exit status 1 (other exceptions are bugs:
    they keep their traceback)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        terminated = []

        def on_sigterm(signum, frame):
            terminated.append(signum)
            # unwound as Ctrl-C is: atomic writes leave nothing half-written
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # click >= 8.2
            click.echo(e.ctx.get_help())  # `percae` or `percae data` alone: the help, as asked
            sys.exit(0)
        except click.UsageError as e:
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{hint}", err=True)
            sys.exit(1)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(1)
        except (click.Abort, KeyboardInterrupt):
            what, status = ("terminated (SIGTERM)", 143) if terminated else ("interrupted", 130)
            click.echo(
                f"Error: {what}; rerun the same command to resume (finished work is kept)", err=True
            )
            sys.exit(status)
        finally:
            signal.signal(signal.SIGTERM, previous)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            # --help, Ctrl-C and click's own errors: click's way (and no torch import for --help)
            raise
        except Exception as e:
            if _raised_while_interrupted(e):
                # a library's clean-up that failed because it was cut off: the interrupt is
                # what happened, and it ends as one
                raise KeyboardInterrupt from e
            if isinstance(e, OSError):
                where = f": {e.filename}" if e.filename else ""
                raise click.ClickException(f"{e.strerror or e}{where}") from None
            if isinstance(
                e, _errors()
            ):  # imported only now: the library's errors live beside torch
                raise click.ClickException(" ".join(str(e).split())) from None
            raise


def _raised_while_interrupted(error: BaseException) -> bool:
    """Whether `error` was raised while a Ctrl-C or SIGTERM (a KeyboardInterrupt) unwound."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__context__
    return False


LOG = logging.getLogger("percae")


def _given(settings: dict) -> dict:
    """The options given: one not given is None, and leaves the config's default."""
    return {name: value for name, value in settings.items() if value is not None}


def parse_seeds(text: str, first: int = 0) -> tuple[int, ...]:
    """`--seeds`: a count N (seeds first, first+1, ..., first+N-1) or a comma-separated list."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--seeds takes a count (3) or comma-separated seeds (0,1,2), got {text!r}"
        ) from None
    if len(values) == 1:
        if values[0] < 1:
            raise ConfigError(f"--seeds needs a count of at least 1, got {values[0]}")
        return tuple(range(first, first + values[0]))
    return values


class _EchoHandler(logging.Handler):
    """The "percae" logger's records, printed as the commands print (and captured alike)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=record.levelno >= logging.WARNING)


@click.group(cls=_Group)
@click.version_option(package_name="percae")
@click.option(
    "--quiet", "-q", is_flag=True, help="Only warnings, errors and results (no progress lines)."
)
@click.option("--verbose", "-v", is_flag=True, help="Also debug messages.")
def main(quiet: bool, verbose: bool) -> None:
    """Autoencoders with pixel-wise or perceptual loss, and how useful their embeddings are."""
    logger = logging.getLogger("percae")
    logger.handlers = [_EchoHandler()]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


@main.group(cls=_Group)
def data() -> None:
    """Create or download datasets."""


@data.command("lunarlander")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to create.")
@click.option("--rollouts", default=None, type=int, help="[default: 1400, the paper's]")
@click.option("--steps", default=None, type=int, help="Steps per rollout [150].")
@click.option("--image-size", default=None, type=int, help="[64]")
@click.option("--seed", default=None, type=int, help="[0]")
@click.option("--workers", default=None, type=int, help="0: one per core (at most 8) [0].")
def data_lunarlander(out, **settings):
    """Random-policy LunarLander-v3 rollouts with lander positions."""
    # Every option but --out is the LunarLanderConfig field of its name (tests/test_cli.py checks
    # it); one not given is None and takes the field's default.
    from .data.lunarlander import LunarLanderConfig, generate_lunarlander, load_lunarlander

    path = generate_lunarlander(out, LunarLanderConfig(**_given(settings)))
    meta = load_lunarlander(path).meta
    click.echo(
        f"wrote {meta['frames']} frames to {path}; the off-screen filter removed "
        f"{meta['offscreen_removed']} ({meta['offscreen_removed_fraction_of_altered']:.1%}) of the "
        "altered rollouts' frames"
    )


@data.command("stl10")
@click.option("--root", required=True, type=click.Path(file_okay=False))
def data_stl10(root):
    """Download and verify STL-10 (binary release) into ROOT/stl10_binary."""
    from .data.stl10 import download_stl10

    download_stl10(root)
    click.echo(f"STL-10 is ready in {root}")


@data.command("svhn")
@click.option("--root", required=True, type=click.Path(file_okay=False))
def data_svhn(root):
    """Download and verify SVHN cropped digits into ROOT."""
    from .data.svhn import download_svhn

    download_svhn(root)
    click.echo(f"SVHN is ready in {root}")


class _ScaleType(click.ParamType):
    name = "NUMBER|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) or value == "auto":
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor auto", param, ctx)


def _perceptual_options(f, part: str = ""):
    """The perceptual network's options, as `train` names them (TrainConfig's fields) or, with
    part "train__", as `reproduce` does (its study's training's)."""
    f = click.option(
        "--perceptual-scale",
        f"{part}perceptual_scale",
        default=None,
        type=_ScaleType(),
        help="The factor of every loss but pixel MSE: a number (1: the paper's loss), or auto: "
        "the ratio of pixel MSE to the loss between training images, so that --kl-weight means "
        "the same for every loss and network.",
    )(f)
    f = click.option(
        "--perceptual-weights",
        f"{part}perceptual_weights",
        default=None,
        help="A torchvision-format state dict for the perceptual network (offline AlexNet), or "
        "'imagenet' for a torchvision:ARCH:LAYER trunk's ImageNet weights (downloaded).",
    )(f)
    f = click.option(
        "--perceptual-net",
        f"{part}perceptual_net",
        default=None,
        help="NET or NET:LAYER (several layers summed: NET:LAYER+LAYER). NET: alexnet (the "
        "paper's, ImageNet weights: cached, downloaded, or --perceptual-weights; the default but "
        "for the quick preset) or alexnet-random (the quick preset's), layers relu1-relu5 "
        "(default relu2); efficientnet-lite0, -lite1, -lite2 (ImageNet, offline), layers stem, "
        "blockN, stage1-stage7 (default block1); efficientnet-lite0-s8 (lite0:block3); or "
        "torchvision:ARCH:LAYER (e.g. torchvision:vgg16:relu2_2; random weights unless "
        "--perceptual-weights).",
    )(f)
    return f


@main.command()
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
@_perceptual_options
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
    from .data import load_study_data, split
    from .perceptual_networks import (
        build_perceptual_network,
        check_perceptual_net_name,
        describe_weights,
    )
    from .model import AutoencoderConfig, build_autoencoder
    from .layout import RunFiles
    from .training import TrainConfig, train_autoencoder

    check_output_folder(out)
    board = None
    if tensorboard_dir is not None:  # checked now; it writes nothing before the first epoch
        from .tensorboard_log import TensorBoardLog

        board = TensorBoardLog(tensorboard_dir)
    if RunFiles(out).train_result.exists():
        raise ConfigError(f"{out} already holds a trained run; choose another --out")
    # Options not given are None: TrainConfig's defaults.
    config = TrainConfig(**_given(settings))
    check_perceptual_net_name(config.perceptual_net)
    if config.loss == "perceptual":
        build_perceptual_network(
            config.perceptual_net, config.perceptual_weights
        )  # a bad layer or weights file: refused now
    config.validate()
    if z is not None and z < 1:
        raise ConfigError(f"--z must be at least 1, got {z}")
    study = load_study_data(dataset, data_root, seed=config.seed, image_size=image_size)
    size = {} if z is None else {"latent_dim": z}
    autoencoder = AutoencoderConfig(model, image_size=study.autoencoder.image_size, **size)
    ae = build_autoencoder(autoencoder, seed=config.seed)
    tr, va = split(study.autoencoder, 0.2, config.seed)
    LOG.info(
        f"training {model} z={autoencoder.latent_dim} with {config.loss} loss"
        + (
            f" ({config.perceptual_net}, weights: "
            f"{describe_weights(config.perceptual_net, config.perceptual_weights)})"
            if config.loss == "perceptual"
            else ""
        )
        + f" on {len(tr)} images, validating on {len(va)}"
    )
    result = train_autoencoder(
        ae,
        tr,
        va,
        config,
        run_dir=out,
        on_epoch=(lambda row: board.epoch(Path(out).name, row)) if board else None,
    )
    if board is not None:
        import numpy as np

        from .embeddings import reconstruct

        sample = np.arange(min(8, len(va)))
        board.reconstructions(
            Path(out).name,
            va.subset(sample).materialize(),
            reconstruct(ae, va, sample, config.device),
            step=result.best_epoch,
        )
        board.close()
    click.echo(
        f"best epoch {result.best_epoch} (val {result.best_val_loss:.4g}); "
        f"{result.images_per_second:.0f} images/s; run saved in {out}"
    )


@main.command()
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--data",
    "data_root",
    required=True,
    type=click.Path(exists=True),
    help="A dataset folder (--dataset), or a .npy file of images: uint8 (N, S, S, 3) or float "
    "(N, 3, S, S).",
)
@click.option("--dataset", default="lunarlander", show_default=True)
@click.option(
    "--part",
    type=click.Choice(["all", "autoencoder", "predictor", "test"]),
    default="all",
    show_default=True,
    help="all: every image in file order, for datasets whose parts share one file "
    "(lunarlander, folder).",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="A .npy file of float32 (N, z)."
)
@click.option("--device", default="auto", show_default=True)
def encode(run_dir, data_root, dataset, part, out, device):
    """Write the embeddings (mu) of a dataset with a trained run."""

    from .data import ImageSet, load_study_data
    from .embeddings import cached_embeddings
    from .model import load_autoencoder
    from .device import resolve_device

    if not out.endswith(".npy"):
        raise ConfigError(f"--out must end in .npy (got {out})")
    if Path(out).exists():
        raise ConfigError(f"{out} exists; choose another --out")
    folder = Path(out).parent
    if not folder.is_dir():
        raise ConfigError(
            f"--out {out}: the folder {folder} does not exist (or is a file); create it first"
        )
    check_output_folder(folder)
    resolve_device(device)
    model = load_autoencoder(run_dir)
    if Path(data_root).is_file():
        import numpy as np

        from .config import atomic_write_bytes
        from .embeddings import encode_images

        if not data_root.endswith(".npy"):
            raise ConfigError(f"--data {data_root}: a file of images must be a .npy array")
        try:
            images = np.load(data_root, mmap_mode="r")  # never unpickles
        except ValueError as e:
            raise ConfigError(f"--data {data_root} is not a plain .npy array ({e})") from None
        z = encode_images(model, images, device=device)
        atomic_write_bytes(out, lambda f: np.save(f, z))
        click.echo(f"wrote {z.shape[0]} x {z.shape[1]} embeddings to {out}")
        return
    # The images at the size the model takes: a folder dataset is resized to it.
    study = load_study_data(dataset, data_root, image_size=model.config.image_size)
    if part == "all":
        base = study.autoencoder
        if any(p.images is not base.images for p in (study.predictor, study.test)):
            # STL-10 and SVHN keep each part in its own file: "all" would silently mean one of them.
            raise ConfigError(
                f"--part all needs one image file for every part, and {dataset} has one per part; "
                "encode each with --part autoencoder, predictor or test"
            )
        images = ImageSet(base.images, base.targets, base.groups, tile=base.tile, name=base.name)
    else:
        images = getattr(study, part)
    z = cached_embeddings(out, model, images, device)
    click.echo(f"wrote {z.shape[0]} x {z.shape[1]} embeddings to {out}")


@main.command()
@click.argument(
    "dataset", type=click.Choice(["lunarlander", "stl10", "svhn", "folder"]), required=False
)
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
@functools.partial(_perceptual_options, part="train__")
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
    address,
    cpus_per_run,
    gpus_per_run,
    tensorboard_dir,
    **settings,
):
    """Run the whole study on DATASET and write its tables (resumable)."""
    # Every option in `settings` is the StudyConfig setting of its name, PART__NAME for a part's
    # (tests/test_cli.py checks it); those not given are None and take the preset's value.
    from .study.config import StudyConfig, preset_config
    from .study.run import run_study

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
        from .cluster import RayExecutor

        runner = RayExecutor(address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
    else:
        if address is not None or cpus_per_run != 1.0 or gpus_per_run != 0.0:
            raise ConfigError("--address, --cpus-per-run and --gpus-per-run are for --executor ray")
        runner = None
    board = None
    if tensorboard_dir is not None:
        from .tensorboard_log import TensorBoardLog

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
            from .tensorboard_log import log_study_reconstructions

            log_study_reconstructions(board, out)
    finally:
        if board is not None:
            board.close()
    click.echo("")
    click.echo(StudyFiles(out).tables.read_text())
    click.echo(f"results: {out}/tables.md, summary.json, results.csv, reconstructions.png")


@main.command()
@click.option(
    "--embeddings",
    "embedding_files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="A .npy (N, z) array; repeat to compare several embeddings of the same images (each "
    "against the first).",
)
@click.option(
    "--targets",
    required=True,
    type=click.Path(dir_okay=False),
    help="A .npy array: (N,) or (N, D) numbers, or (N,) integer classes with --task "
    "classification.",
)
@click.option(
    "--groups",
    default=None,
    type=click.Path(dir_okay=False),
    help="A .npy (N,) array of group ids (e.g. rollouts): no group on two sides of a split.",
)
@click.option(
    "--task",
    type=click.Choice(["regression", "classification"]),
    default="regression",
    show_default=True,
)
@click.option(
    "--test-embeddings",
    "test_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A separate test set, one per --embeddings in the same order (default: 20% split off).",
)
@click.option("--test-targets", default=None, type=click.Path(dir_okay=False))
@click.option(
    "--seeds",
    default="3",
    show_default=True,
    help="Predictor seeds: a count or a comma-separated list.",
)
@click.option(
    "--split-seed", default=0, show_default=True, type=int, help="The seed of the splits."
)
@click.option("--predictor-epochs", "epochs", default=None, type=int, help="[500]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [auto].")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for probe.json and tables.md.",
)
def probe(
    embedding_files,
    targets,
    groups,
    task,
    test_files,
    test_targets,
    seeds,
    split_seed,
    out,
    **settings,
):
    """Evaluate any embeddings as the paper does (predictor grid, baseline, intervals)."""
    from .probe import load_array, probe_embeddings
    from .predictors import PredictorConfig

    names = [Path(f).stem for f in embedding_files]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"--embeddings files need distinct names (their stems: {', '.join(names)})"
        )
    if test_files and len(test_files) != len(embedding_files):
        raise ConfigError("--test-embeddings: give one for each --embeddings, in the same order")
    result = probe_embeddings(
        {n: load_array(f, "--embeddings") for n, f in zip(names, embedding_files)},
        load_array(targets, "--targets"),
        out,
        task=task,
        groups=load_array(groups, "--groups") if groups else None,
        test_embeddings={n: load_array(f, "--test-embeddings") for n, f in zip(names, test_files)}
        or None,
        test_targets=load_array(test_targets, "--test-targets") if test_targets else None,
        seeds=parse_seeds(seeds),
        split_seed=split_seed,
        # The options not given are None: PredictorConfig's defaults.
        config=PredictorConfig(**_given(settings)),
    )
    from .probe import probe_tables

    click.echo(probe_tables(result))
    click.echo(f"results: {out}/probe.json, tables.md")


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="A new folder for the model."
)
def export(run, out):
    """Write RUN (a percae train run, or RESULTS/runs/NAME) as a shareable model folder."""
    from .export import export_run

    export_run(run, out)
    click.echo(
        f"wrote {out}: model.safetensors, model_config.json, the run's configs and results, "
        "README.md"
    )


@main.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False))
def report(results):
    """Rebuild tables.md, summary.json, results.csv and reconstructions.png of RESULTS."""
    from .report import write_report

    with exclusive_use(results, "RESULTS"):
        write_report(results)
    click.echo(StudyFiles(results).tables.read_text())


def run() -> None:
    """The `percae` program (its console script and `python -m percae`): the command line, then
    the interpreter's teardown with SIGINT and SIGTERM ignored. By then the outcome is decided
    and written; a signal during the second or so that torch takes to unload would otherwise end
    the process killed by the signal, with no line, or print a traceback from an exit callback
    (before it unloads modules, Python hands each signal it handled back to its default action,
    but leaves an ignored one ignored)."""
    try:
        main()
    finally:
        for signum in STOPPING_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        # Under `python -m`, CPython ends the process by SIGINT at exit, whatever its status,
        # if a KeyboardInterrupt ever left code run by exec or eval from a string (dataclasses
        # and namedtuples are made so, on import), even one that was handled; a string that
        # runs to its end clears that mark.
        exec("")
