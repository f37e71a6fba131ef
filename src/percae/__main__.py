"""`python -m percae`: the `percae` command line."""

from .cli import main

main()
