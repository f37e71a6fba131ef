"""Progress bars (tqdm's) that an interruption cannot turn into a traceback.

A Ctrl-C or SIGTERM that lands inside tqdm's constructor leaves a bar without its position;
tqdm's finaliser then fails on it when the bar is collected, and Python prints that failure
after percae's one-line "interrupted" message. The bar here is tqdm's, collected quietly when
it was never fully built.
"""

from __future__ import annotations

import functools


@functools.cache
def _bar_class():
    from tqdm.auto import tqdm  # imported on first use: tqdm.auto pulls in asyncio

    class Bar(tqdm):
        def __del__(self):
            if hasattr(self, "pos"):  # set last in tqdm's constructor
                super().__del__()

    return Bar


def progress_bar(**kwargs):
    """A tqdm bar (tqdm.auto's, with the same arguments)."""
    return _bar_class()(**kwargs)
