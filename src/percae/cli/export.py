"""`percae export`: a run as a shareable model folder (`export.export_run`)."""

from __future__ import annotations

import click


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="A new folder for the model."
)
def export(run, out):
    """Write RUN (a percae train run, or RESULTS/runs/NAME) as a shareable model folder."""
    from ..export import export_run

    export_run(run, out)
    click.echo(
        f"wrote {out}: model.safetensors, model_config.json, the run's configs and results, "
        "README.md"
    )
