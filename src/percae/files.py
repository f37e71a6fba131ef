"""Safe files and exclusive use, for every writer: a file is written whole or not at all (and
Ctrl-C or SIGTERM waits until it is in place), the temporary files of a killed writer are swept
by the next, JSON is read strictly, an output folder is checked before any work, a folder is
held by one process at a time (a lock), a folder being filled is hidden, marked with its owner
and renamed into place when whole, and new folders take the user's umask."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

from .errors import ConfigError

UMASK = os.umask(0)
os.umask(UMASK)

# The signals that end a run as Ctrl-C does: unwound, one line, the finished work kept.
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM held back until the block ends: an interrupted run then leaves no
    temporary file behind, and no library (matplotlib writing a PDF, say) is cut off in the
    middle. Held by swapping Python's handlers, which always run in the main thread, rather
    than by a signal mask, which covers only the calling thread: a signal the kernel hands to
    one of torch's or BLAS's threads would get through a mask."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum, frame):
        held.append(signum)

    previous = {}
    for signum in STOPPING_SIGNALS:
        handler = signal.getsignal(signum)
        # an ignored signal stays ignored; one that C code took (None) cannot be put back
        if handler is not None and handler is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        acted_on = None
        for signum, handler in previous.items():
            try:  # every handler is put back, even if a signal that comes meanwhile raises
                signal.signal(signum, handler)
            except BaseException as e:
                acted_on = acted_on or e
        if acted_on is not None:
            raise acted_on
        for signum in dict.fromkeys(held):  # each once, in the order they came
            signal.raise_signal(signum)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through `write(file)` so that a reader sees the old content or the new
    one, never half: into a temporary file beside it, synced, then renamed over it."""
    with signals_deferred():
        _atomic_write_bytes(Path(path), write)


def _atomic_write_bytes(path: Path, write: Callable[[BinaryIO], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # as an ordinary new file (mkstemp makes it private)
        os.replace(tmp, path)
    except (
        OSError
    ) as e:  # a full disk, a folder made read-only: the file and the cause, in one line
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Standard JSON only: a NaN or an infinity is an error here, never a file other tools
    misread."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except ValueError:
        raise ValueError(
            f"refusing to write {path}: it would hold NaN or infinity ({_non_finite(obj)})"
        ) from None
    atomic_write_text(path, text + "\n")


def _non_finite(obj: Any, where: str = "") -> str:
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{where or 'value'} = {obj}"
    items = (
        obj.items()
        if isinstance(obj, dict)
        else enumerate(obj)
        if isinstance(obj, (list, tuple))
        else ()
    )
    for key, value in items:
        found = _non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return ""


def remove_stale_temporary_files(folder: str | os.PathLike) -> None:
    """The temporary files that killed atomic writes (kill -9, power loss) left in `folder`;
    called by the next run there, which owns the folder (a concurrent one would be an error)."""
    folder = Path(folder)
    if folder.is_dir():
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


# Larger than any settings or result file percae writes: a bigger one is not one of them.
MAX_JSON_BYTES = 16 << 20


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise _DuplicateKey(twice[0])
    return dict(pairs)


class _DuplicateKey(ValueError):
    pass


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """A JSON file's content; a missing, unreadable, oversized (or not a regular file: a FIFO
    would block), malformed or absurdly nested file, or one that gives a key twice (which JSON
    readers settle each their own way), is a ConfigError naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a regular file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ConfigError(
            f"{what} {path} is {path.stat().st_size} bytes, more than any percae file "
            f"({MAX_JSON_BYTES} at most)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise ConfigError(f"{what} {path} gives the key {e} twice; keep one of them") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"{what} {path} is not valid JSON ({e}); restore or regenerate it"
        ) from None
    except (RecursionError, ValueError) as e:  # nested thousands deep; thousands of digits
        raise ConfigError(
            f"{what} {path} is not a settings file percae can read ({type(e).__name__}: "
            f"{str(e)[:100]})"
        ) from None


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse, before any work, a folder that cannot be created or written: a file in its
    place or above it."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{option} {path} is a file; choose a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{option} {path} is not writable; choose another place")
        return path
    for parent in path.parents:  # the nearest existing folder above it must take a new folder
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(
                    f"{option} {path}: {parent} is not writable; choose another place"
                )
            break
    return path


def try_lock(fd: int, wait: bool = False) -> bool:
    """An advisory lock on an open file or folder, released however the process ends; False
    where another process holds it (or, not on POSIX, where there are no locks)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def exclusive_use(folder: str | os.PathLike, option: str = "--out"):
    """Hold `folder` for this process while the block runs: another percae asking for it is
    refused in one line."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if not try_lock(fd) and _has_locks():
            raise ConfigError(
                f"{option} {folder} is in use by another percae run; wait for it to end, or use "
                f"another {option}"
            )
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def waiting_for(folder: Path):
    """Hold `folder` (made if missing), waiting for another holder to let go: a second process
    filling the same cache waits and then finds it filled. Yields False where the folder cannot
    be made (an unwritable cache: the caller goes on without it)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        try_lock(fd, wait=True)
        yield True
    finally:
        os.close(fd)


def _has_locks() -> bool:
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return False
    return True


def new_folder(parent: Path, prefix: str) -> Path:
    """A new folder with a unique name in `parent`, its permissions as the user's umask makes
    folders (tempfile makes them private)."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    folder.chmod(0o777 & ~UMASK)
    return folder


# In a folder being filled: the process filling it, "HOST PID".
OWNER = "generating.pid"
# A folder being filled without its owner yet is left alone this long (its writer may be
# about to mark it).
UNMARKED_GRACE_SECONDS = 3600


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_partials(out: Path, keep: Path | None = None) -> list[str]:
    """Remove the partial folders (`.NAME.partial.*`) that killed writers into `out` left
    behind: their owner, on this machine, is gone. One of another machine (a shared disk) is
    left alone, and one without an owner only once it is an hour old. Returns the owners of
    those left (`keep`, the caller's own, aside)."""
    alive = []
    for partial in out.parent.glob(f".{out.name}.partial.*"):
        if partial == keep:
            continue
        try:
            host, pid = (partial / OWNER).read_text().split()
            stale = host == socket.gethostname() and (
                int(pid) == os.getpid() or not running(int(pid))
            )
            owner = f"{partial}, by process {pid} on {host}"
        except FileNotFoundError:
            stale = time.time() - partial.stat().st_mtime > UNMARKED_GRACE_SECONDS
            owner = f"{partial}, just begun"
        except (OSError, ValueError):
            stale, owner = True, ""  # an owner file no writer wrote
        if stale:
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            alive.append(owner)
    return alive


@contextlib.contextmanager
def filled_in_place(out: Path, busy: Callable[[str], Exception]):
    """A hidden folder beside `out` (`.NAME.partial.*`, as the user's umask makes folders),
    marked with this process as its owner, for the block to fill; renamed to `out` (which must
    be missing or empty) once the block ends well, removed if it does not. A partial folder a
    killed writer left is removed first; another live writer's is refused with `busy(owner)`.
    A reader never sees half a folder, and a killed writer leaves nothing the next one keeps."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out)
    partial = new_folder(out.parent, f".{out.name}.partial.")
    try:
        (partial / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
        # Checked once this one is visible: of two started together, neither goes on alone
        # unseen (both may be refused; a rerun then writes once).
        others = remove_stale_partials(out, keep=partial)
        if others:
            raise busy(others[0])
        yield partial
        if out.exists() and not any(out.iterdir()):
            out.rmdir()
        os.replace(partial, out)
        (out / OWNER).unlink()  # only now: until the rename, the owner marks the folder as live
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
