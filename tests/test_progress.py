import gc
import io
import sys

import pytest
from tqdm.auto import tqdm

from percae.progress import progress_bar


def interrupted_in_constructor(make, monkeypatch):
    """Build a bar whose constructor is interrupted where a Ctrl-C can land, collect it,
    and return what Python reported as failing in finalisers meanwhile."""
    failures = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: failures.append(report.exc_type))

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tqdm, "_get_free_pos", interrupt)
    with pytest.raises(KeyboardInterrupt):
        make(total=3, desc="x", disable=False)
    gc.collect()
    return failures


def test_a_bar_interrupted_while_built_is_collected_without_an_error(monkeypatch):
    assert interrupted_in_constructor(progress_bar, monkeypatch) == []


def test_tqdm_itself_reports_such_a_bar_as_an_error(monkeypatch):
    # What the bar guards against: if tqdm stops failing here, the guard can go.
    assert interrupted_in_constructor(tqdm, monkeypatch) == [AttributeError]


def test_the_bar_counts_and_closes_like_tqdm():
    out = io.StringIO()
    with progress_bar(total=4, file=out, desc="epoch 1", disable=False) as bar:
        bar.update(3)
    assert bar.n == 3 and isinstance(bar, tqdm)
    assert "epoch 1" in out.getvalue() and "3/4" in out.getvalue()
