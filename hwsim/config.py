"""Small frozen dataclass configs that round-trip through JSON/YAML and reject unknown keys.

Every component (nets, schedules, training, FID) is configured by one of these, so a result
file can carry the exact config that produced it and a typo in a config file is an error
instead of a silently ignored key (the failure mode of Brevitas issue #251).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or dict does not match its dataclass."""


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Coerce JSON values to the field's annotated type (tuples, nested configs)."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return from_dict(annotation, value, where)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        inner = args[0] if args else Any
        return tuple(_convert(v, inner, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is type(None) and value is None:
                return None
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return from_dict(arg, value, where)
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise ``ConfigError`` naming them."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; allowed: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # missing required fields
        raise ConfigError(f"{where}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a (nested) dataclass config; tuples become lists."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML file into a dict, with a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load(cls: type[T], path: str | Path) -> T:
    """Load dataclass ``cls`` from a JSON or YAML file."""
    return from_dict(cls, read_mapping(path), where=str(path))


def save(config: Any, path: str | Path) -> Path:
    """Write a dataclass config as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(config), indent=2) + "\n")
    return path
