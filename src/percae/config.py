"""Typed configuration: dataclasses that round-trip through JSON, strictly."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import numbers
import os
import signal
import tempfile
import threading
import types
import typing
from pathlib import Path
from typing import Any, BinaryIO, Callable, TypeVar

T = TypeVar("T", bound="JsonConfig")


class ConfigError(ValueError):
    """A configuration value or file is wrong; the message says how to fix it."""


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


_UMASK = os.umask(0)
os.umask(_UMASK)


# The signals that end a run as Ctrl-C does: unwound, one line, the finished work kept.
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_deferred():
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


@contextlib.contextmanager
def exclusive_use(folder: str | os.PathLike, option: str = "--out"):
    """Hold `folder` for this process (an advisory lock on the folder itself, released however
    the process ends): another percae asking for it is refused in one line."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(
            f"{option} {folder} is in use by another percae run; wait for it to end, or use "
            f"another {option}"
        ) from None
    try:
        yield
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through `write(file)` so that a reader sees the old content or the new
    one, never half: into a temporary file beside it, synced, then renamed over it."""
    with _signals_deferred():
        _atomic_write_bytes(Path(path), write)


def _atomic_write_bytes(path: Path, write: Callable[[BinaryIO], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # as an ordinary new file (mkstemp makes it private)
        os.replace(tmp, path)
    except (
        OSError
    ) as e:  # a full disk, a folder made read-only: the file and the cause, in one line
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporary_files(folder: str | os.PathLike) -> None:
    """The temporary files that killed atomic writes (kill -9, power loss) left in `folder`;
    called by the next run there, which owns the folder (a concurrent one would be an error)."""
    folder = Path(folder)
    if folder.is_dir():
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


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


# Larger than any settings or result file percae writes: a bigger one is not one of them.
MAX_JSON_BYTES = 16 << 20


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """A JSON file's content; a missing, unreadable, oversized (or not a regular file: a FIFO
    would block), malformed or absurdly nested file is a ConfigError naming it."""
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
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"{what} {path} is not valid JSON ({e}); restore or regenerate it"
        ) from None
    except (
        RecursionError,
        ValueError,
    ) as e:  # nested thousands deep; an integer of thousands of digits
        raise ConfigError(
            f"{what} {path} is not a settings file percae can read ({type(e).__name__}: "
            f"{str(e)[:100]})"
        ) from None


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


def early_stopping_patience(epochs: int, patience: int | None) -> int:
    """Epochs without a better validation loss before training stops: as set, else the
    study's max(10, epochs // 20) (the one place of that rule, for autoencoders and predictors)."""
    return patience if patience is not None else max(10, epochs // 20)


# The default of a record's field that every file of it must hold.
REQUIRED: Any = dataclasses.MISSING

# Seeds beyond this cannot seed torch's and numpy's generators.
MAX_SEED = 2**63 - 1


def setting(
    default: Any,
    *,
    option: str | None = None,
    min: float | None = None,
    above: float | None = None,
    max: float | None = None,
    choices: tuple | None = None,
) -> Any:
    """A config field with the rule its value keeps, checked by `JsonConfig.validate` (for a
    tuple, by each item; None always passes): `min` (at least), `above` (more than), `max` (at
    most), `choices`; a float must also be finite. `option` is the CLI option that sets it
    (default --field-name), named in its messages."""
    return dataclasses.field(
        default=default,
        metadata={
            "option": option,
            "min": min,
            "above": above,
            "max": max,
            "choices": choices,
        },
    )


def option_name(f: dataclasses.Field) -> str:
    return f.metadata.get("option") or "--" + f.name.replace("_", "-")


class JsonConfig:
    """Mixin for dataclass configs: `to_dict`, `from_dict` (unknown keys are errors), `save`,
    `load`, `validate` (types and each `setting`'s rule)."""

    error: typing.ClassVar[type[Exception]] = (
        ConfigError  # what `validate` raises (data configs: DataError)
    )

    # Messages name a setting by the option that sets it; a result file's, by its key.
    named_by_option: typing.ClassVar[bool] = True

    def validate(self) -> None:
        """Refuse a value of the wrong type or one that breaks its setting's rule; configs with
        rules across settings add them after this."""
        self.check_types()
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value, rule = getattr(self, f.name), f.metadata
            option = option_name(f) if self.named_by_option else f.name
            if isinstance(value, JsonConfig):  # a part: its own rules
                try:
                    value.validate()
                except ConfigError as e:
                    if self.named_by_option:
                        raise
                    raise type(e)(f"{f.name}.{e}") from None
                continue
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if item is None or isinstance(item, bool):
                    continue
                # Integers are exact at any size: only other numbers can be NaN or infinite.
                if (
                    isinstance(item, numbers.Real)
                    and not isinstance(item, numbers.Integral)
                    and not math.isfinite(item)
                ):
                    raise self.error(f"{option} must be a finite number, got {value}")
                if rule.get("min") is not None and item < rule["min"]:
                    raise self.error(f"{option} must be at least {rule['min']}, got {_show(value)}")
                if rule.get("max") is not None and item > rule["max"]:
                    raise self.error(f"{option} must be at most {rule['max']}, got {_show(value)}")
                if rule.get("above") is not None and item <= rule["above"]:
                    raise self.error(
                        f"{option} must be more than {rule['above']}, got {_show(value)}"
                    )
                if rule.get("choices") is not None and item not in rule["choices"]:
                    raise self.error(
                        f"{option}: unknown value {item!r}; choose from "
                        f"{', '.join(map(str, rule['choices']))}"
                    )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if not isinstance(data, dict):
            raise ConfigError(
                f"{cls.__name__}: expected an object of settings, got {type(data).__name__}"
            )
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; "
                f"known settings are {', '.join(fields)}"
            )
        missing = [
            name
            for name, f in fields.items()
            if name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{cls.__name__}: lacks {', '.join(missing)}")
        hints = typing.get_type_hints(cls)
        config = cls(**{k: _coerce(hints[k], v) for k, v in data.items()})
        config.check_types()
        return config

    def check_types(self) -> None:
        """Refuse a field whose value is not of its declared type (e.g. epochs="5")."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if not _matches(hints[f.name], value):
                raise ConfigError(
                    f"{type(self).__name__}: setting {f.name} must be {_describe(hints[f.name])}, "
                    f"got {value!r}"
                )

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    def write_result(self, path: str | os.PathLike) -> None:
        """This record as its result file; a key whose value is None is left out (a setting
        the run did not have: a scale without a perceptual loss, a VAE's diagnostics)."""
        atomic_write_json(path, {k: v for k, v in self.to_dict().items() if v is not None})

    @classmethod
    def read_result(cls: type[T], path: str | os.PathLike) -> T:
        """A result file percae wrote, as this record: every key, type and rule checked as a
        settings file's are, so that a damaged or edited file is one line naming it and what
        is wrong, never a wrong table."""
        data = read_json(path, "result file")
        try:
            record = cls.from_dict(data)
            record.validate()
        except ConfigError as e:
            raise ConfigError(
                f"result file {path}: {e}; it is damaged or was edited: delete it (and the files "
                "of that run after it) and rerun `percae reproduce` with the same settings"
            ) from None
        return record

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        data = read_json(path, "config file")
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def _show(value: Any) -> str:
    return str(list(value)) if isinstance(value, (tuple, list)) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, JsonConfig):
        return value.to_dict()
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, int, float)):
        return (
            value.item() if hasattr(value, "item") else value
        )  # numpy scalars: JSON takes plain numbers
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _matches(hint: Any, value: Any) -> bool:
    """Whether a JSON value fits a config field's type (int for float, not bool for int)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(a, value) for a in args)
    if hint is type(None):
        return value is None
    if isinstance(hint, type) and issubclass(hint, JsonConfig):
        return isinstance(value, hint)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(args[0], v) for v in value)
        return len(args) == len(value) and all(_matches(a, v) for a, v in zip(args, value))
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True  # types the configs do not use are not checked


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and issubclass(hint, JsonConfig):
        return "an object of settings"
    if origin is dict:
        return "an object"
    if origin is tuple:
        return f"a list, each item {_describe(args[0])}"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "an object",
    }.get(hint, str(hint))


def _coerce(hint: Any, value: Any) -> Any:
    # JSON has no tuples; turn lists back into the tuples the dataclass declares.
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, JsonConfig) and isinstance(value, dict):
        return hint.from_dict(value)  # a part, as strictly as the whole
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # JSON writes 1.0 as 1 in some tools
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is not None and len(args) == 1:
            return _coerce(args[0], value)
    return value
