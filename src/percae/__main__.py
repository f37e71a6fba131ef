"""`python -m percae`: the `percae` command line."""

from .cli import run

run()
