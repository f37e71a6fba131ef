"""What percae requires of an array a user gives it (embeddings, targets, groups, images read
from a file), checked before any work and refused in one line naming the first cause: real
numbers only, every value as float32 computes with it (integers float32 holds exactly, finite,
squares that do not overflow), shapes that pair up, and .npy files read without pickles."""

from __future__ import annotations

import os

import numpy as np

from .errors import ConfigError

# Beyond this a float32 square overflows (3.4e38), and so would a predictor's loss.
MAX_MAGNITUDE = 1e18
# The integers float32 holds exactly: a nanosecond timestamp would collapse onto its neighbours.
MAX_EXACT_INTEGER = 2**24


def load_array(path: str | os.PathLike, what: str) -> np.ndarray:
    """A plain .npy array (never unpickled), refused in one line otherwise (an .npz, a pickle,
    a truncated file)."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        raise ConfigError(f"{what} {path} is an .npz archive; save each array as its own .npy")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{what} {path} is not a readable .npy array ({reason[:160]})") from None
    if not isinstance(array, np.ndarray):
        raise ConfigError(f"{what} {path} is not a single .npy array")
    return array


def real_array(
    what: str, array, dims: tuple[int, ...] = (2,), rows: int | None = None
) -> np.ndarray:
    """`array` as float32, if it holds real numbers float32 computes with exactly enough: of
    `dims` dimensions, at least one row (and column), `rows` rows where given."""
    array = np.asarray(array)
    shape = f"{array.dtype} {tuple(array.shape)}"
    if array.dtype.kind not in "fiu":
        kind = {"c": "complex numbers", "b": "true/false values", "U": "text", "S": "bytes"}.get(
            array.dtype.kind, "objects"
        )
        raise ConfigError(f"{what} holds {kind} ({shape}); give real numbers")
    if array.ndim not in dims:
        want = " or ".join(f"{d}-dimensional" for d in dims)
        raise ConfigError(f"{what} must be {want}, got {shape}")
    if array.size == 0 or len(array) == 0:
        raise ConfigError(f"{what} is empty ({shape}); give at least one row of numbers")
    if rows is not None and len(array) != rows:
        raise ConfigError(f"{what} has {len(array)} rows where {rows} are paired with it")
    if array.dtype.kind in "iu" and array.size:
        largest = int(np.abs(array.astype(np.float64)).max())
        if largest > MAX_EXACT_INTEGER:
            raise ConfigError(
                f"{what} holds integers up to {largest}, beyond the {MAX_EXACT_INTEGER} float32 "
                "holds exactly (neighbours would become equal); scale or shift them"
            )
    with np.errstate(all="ignore"):
        values = array.astype(np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            raise ConfigError(
                f"{what} holds {int((~finite).sum())} NaN or infinite value(s) (first at "
                f"{tuple(map(int, np.unravel_index(int(np.flatnonzero(~finite)[0]), array.shape)))}"
                "); remove them"
            )
        largest = float(np.abs(values).max())
    if largest > MAX_MAGNITUDE:
        raise ConfigError(
            f"{what} holds values up to {largest:.3g}, beyond ±{MAX_MAGNITUDE:g}, where float32 "
            "squares overflow; scale them"
        )
    return array.astype(np.float32)


def class_labels(what: str, array, rows: int | None = None) -> np.ndarray:
    """Integer class labels (N,), as int64."""
    array = np.asarray(array)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise ConfigError(
            f"{what} must be integer class labels (N,) for classification, got "
            f"{array.dtype} {tuple(array.shape)}"
        )
    if len(array) == 0 or (rows is not None and len(array) != rows):
        raise ConfigError(f"{what} has {len(array)} labels where {rows} are paired with them")
    return array.astype(np.int64)


def group_ids(what: str, array, rows: int) -> np.ndarray:
    """One group per row (integers or text, no NaN), (N,)."""
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != 1 or len(array) != rows:
        raise ConfigError(
            f"{what} must be one group per row ({rows},), got {array.dtype} {tuple(array.shape)}"
        )
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ConfigError(f"{what} holds NaN or infinite group ids; give every row a group")
    elif array.dtype.kind not in "iuUS":
        raise ConfigError(f"{what} holds {array.dtype} values; give integer or text group ids")
    return array
