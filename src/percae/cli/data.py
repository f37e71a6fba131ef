"""`percae data`: generate a LunarLander collection, download STL-10 or SVHN."""

from __future__ import annotations

import click

from .errors import Group
from .options import given


@click.group(cls=Group)
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
    from ..data.lunarlander import LunarLanderConfig, generate_lunarlander, load_lunarlander

    path = generate_lunarlander(out, LunarLanderConfig(**given(settings)))
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
    from ..data.stl10 import download_stl10

    download_stl10(root)
    click.echo(f"STL-10 is ready in {root}")


@data.command("svhn")
@click.option("--root", required=True, type=click.Path(file_okay=False))
def data_svhn(root):
    """Download and verify SVHN cropped digits into ROOT."""
    from ..data.svhn import download_svhn

    download_svhn(root)
    click.echo(f"SVHN is ready in {root}")
