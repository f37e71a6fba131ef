"""`percae encode`: a trained run's embeddings of images or of a dataset's part
(`embeddings.encode_data`), with the part's targets and groups for `percae probe`."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import ConfigError
from ..files import check_output_folder, exclusive_use


@click.command()
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
    "--out",
    required=True,
    type=click.Path(),
    help="A new folder (embeddings.npy, with the part's targets.npy and groups.npy and "
    "encoding.json: `percae probe --embeddings FOLDER` reads it as it is), or a .npy file of the "
    "embeddings alone, float32 (N, z).",
)
@click.option("--device", default="auto", show_default=True)
def encode(run_dir, data_root, dataset, part, out, device):
    """Write the embeddings (mu) of a dataset's part, or of a file of images, with a trained run."""
    from ..embeddings import encode_data, write_encoded

    out_path = Path(out)
    if out.endswith(".npy"):
        if out_path.exists():
            raise ConfigError(f"{out} exists; choose another --out")
        folder = out_path.parent
        if not folder.is_dir():
            raise ConfigError(
                f"--out {out}: the folder {folder} does not exist (or is a file); create it first"
            )
        check_output_folder(folder)
    else:
        check_output_folder(out_path)
        if out_path.is_dir() and any(out_path.iterdir()):
            raise ConfigError(f"--out {out} is not empty; choose a new folder")
        folder = out_path
    encoded = encode_data(run_dir, data_root, dataset, part, device)
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_use(folder, "--out"):
        write_encoded(out, encoded)
    z = encoded.embeddings
    extra = (
        ", targets and groups" if encoded.targets is not None and not out.endswith(".npy") else ""
    )
    click.echo(f"wrote {z.shape[0]} x {z.shape[1]} embeddings{extra} to {out}")
