"""A Ray task's temporary folder for its unit, held (locked) while the task works in it, so that
the folders of killed tasks are told apart from those at work and removed by the next task or
driver on that machine."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..files import try_lock


UNIT_FOLDER_PREFIX = "percae-unit-"
_HELD = "held"  # in a unit folder: written once its task holds the folder's lock


@contextlib.contextmanager
def unit_folder():
    """A temporary folder for one unit, locked for as long as its task works in it, so that
    the folders of tasks that were killed (a driver stopping Ray, kill -9, a lost node) are
    told apart from those at work and removed by the next task or driver on that machine."""
    remove_abandoned_unit_folders()
    folder = Path(tempfile.mkdtemp(prefix=UNIT_FOLDER_PREFIX))
    fd = os.open(folder, os.O_RDONLY)
    try:
        try_lock(fd, wait=True)
        (folder / _HELD).write_text(f"{os.getpid()}\n")
        yield folder
    finally:
        # The mark last: a task killed while removing its folder leaves it marked abandoned.
        for entry in folder.iterdir() if folder.is_dir() else []:
            if entry.name != _HELD:
                shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def remove_abandoned_unit_folders() -> None:
    """Remove the unit folders in this machine's temporary directory that no task holds."""
    for folder in Path(tempfile.gettempdir()).glob(f"{UNIT_FOLDER_PREFIX}*"):
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:  # gone meanwhile, or another user's
            continue
        try:
            # Not yet marked: a task about to lock it, unless a minute has passed.
            held = (folder / _HELD).exists() or time.time() - folder.stat().st_mtime > 60
            if try_lock(fd) and held:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass
        finally:
            os.close(fd)
