"""`percae report`: a study's tables and figures rebuilt from its files (`report.write_report`)."""

from __future__ import annotations

import click

from ..files import exclusive_use
from ..layout import StudyFiles


@click.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False))
def report(results):
    """Rebuild tables.md, summary.json, results.csv and reconstructions.png of RESULTS."""
    from ..report import write_report

    with exclusive_use(results, "RESULTS"):
        write_report(results)
    click.echo(StudyFiles(results).tables.read_text())
