"""The refusals percae makes of bad input or an unusable state: each says in one line what is
wrong and how to fix it, and the command line prints it so and exits 1 (any other exception is
a bug and keeps its traceback)."""

from __future__ import annotations


class Refusal(Exception):
    """Bad input or a state percae cannot go on from, in one line: what is wrong, how to fix it."""


class ConfigError(Refusal, ValueError):
    """A configuration value or file is wrong; the message says how to fix it."""


class DataError(Refusal, ValueError):
    """A dataset is missing, malformed or inconsistent; the message names the file and the fix."""
