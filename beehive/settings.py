"""Typed settings from plain YAML data: dataclass schemas with clear errors.

Every config section (the hive's own, each module's mailbox, restart policy and
``settings:``) is a dataclass with defaults. `build` turns the mapping a YAML file
gave into an instance, checking each key against the field's type hint; `plain`
turns an instance back into YAML-ready data (for ``beehive config show``).

Supported field types: bool, int, float, str, StrEnum subclasses, Literal[...],
X | None, list[X], dict[str, X] and nested dataclasses. A field's metadata may
set ``min`` and ``max`` (numbers) to refuse values outside them.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from beehive import errors

T = TypeVar("T")


def build(cls: type[T], data: object, *, path: str, key: str, base: T | None = None) -> T:
    """An instance of dataclass `cls` from `data`; missing keys come from `base` or defaults.

    Raises:
        ConfigError: naming `path` and the dotted key of the first wrong value.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise errors.ConfigError(path, key, f"expected a mapping, found {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in data.items():
        child = _join(key, str(name))
        if name not in fields:
            raise errors.ConfigError(path, child, unknown_key(str(name), list(fields)))
        values[name] = _convert(hints[name], value, path=path, key=child)
        _check_range(fields[name], hints[name], value, path=path, key=child)
    if base is not None:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    try:
        return cls(**values)
    except TypeError as exc:  # a required field without a default was not given
        raise errors.ConfigError(path, key, f"incomplete: {exc}") from None


def plain(value: Any) -> Any:
    """YAML-ready data for a settings instance (enums as their values)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _convert(hint: Any, value: object, *, path: str, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0] if len(inner) == 1 else Any, value, path=path, key=key)
    if hint is Any:
        return value
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise errors.ConfigError(
                path, key, f"expected one of {choices}, found {_describe(value)}"
            )
        return value
    if origin is list:
        if not isinstance(value, list):
            raise errors.ConfigError(path, key, f"expected a list, found {_describe(value)}")
        return [_convert(args[0], v, path=path, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise errors.ConfigError(path, key, f"expected a mapping, found {_describe(value)}")
        return {
            str(k): _convert(args[1], v, path=path, key=_join(key, str(k)))
            for k, v in value.items()
        }
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, path=path, key=key)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint, value, path=path, key=key)
    return _scalar(hint, value, path=path, key=key)


def _scalar(hint: Any, value: object, *, path: str, key: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise errors.ConfigError(path, key, f"expected true or false, found {_describe(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise errors.ConfigError(path, key, f"expected an integer, found {_describe(value)}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise errors.ConfigError(path, key, f"expected a number, found {_describe(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise errors.ConfigError(path, key, f"expected a string, found {_describe(value)}")
    raise TypeError(f"settings field type {hint!r} is not supported")  # a schema bug


def _enum(hint: type[enum.Enum], value: object, *, path: str, key: str) -> enum.Enum:
    try:
        return hint(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in hint)
        raise errors.ConfigError(
            path, key, f"expected one of {choices}, found {_describe(value)}"
        ) from None


def _check_range(
    field: dataclasses.Field[Any], hint: Any, value: object, *, path: str, key: str
) -> None:
    low, high = field.metadata.get("min"), field.metadata.get("max")
    if not isinstance(value, int | float):
        return
    kind = "an integer" if hint is int else "a number"
    if low is not None and value < low:
        raise errors.ConfigError(path, key, f"expected {kind} >= {low}, found {value!r}")
    if high is not None and value > high:
        raise errors.ConfigError(path, key, f"expected {kind} <= {high}, found {value!r}")


def unknown_key(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
    return f"unknown key{hint}"


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds.update({list: "a list", dict: "a mapping"})
    kind = kinds.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if isinstance(value, bool | int | float | str) else kind
