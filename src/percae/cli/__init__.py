"""The `percae` command line: a thin layer over the Python API, a module per command (`data`,
`train`, `encode`, `probe`, `reproduce`, `report`, `export`), what they share of their options
(`options`), and how a command ends (`errors`). Only click is imported here, so that
`percae --help` loads no torch; each command imports what it runs."""

from __future__ import annotations

import logging
import signal

import click

from ..files import STOPPING_SIGNALS
from .data import data
from .encode import encode
from .errors import Group
from .export import export
from .probe import probe
from .report import report
from .reproduce import reproduce
from .train import train


class _EchoHandler(logging.Handler):
    """The "percae" logger's records, printed as the commands print (and captured alike)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=record.levelno >= logging.WARNING)


@click.group(cls=Group)
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


for command in (data, train, encode, reproduce, probe, export, report):
    main.add_command(command)


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
