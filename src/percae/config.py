"""Typed configuration: dataclasses that round-trip through JSON, strictly, each setting with
the rule its value keeps."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .files import atomic_write_json, read_json

__all__ = ["MAX_SEED", "REQUIRED", "ConfigError", "JsonConfig", "option_name", "setting"]

T = TypeVar("T", bound="JsonConfig")


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
        """Every field but those marked `metadata={"saved": False}` (what a record carries in
        memory alone)."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.metadata.get("saved", True)
        }

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
