"""Plain data into typed dataclasses: the YAML loader, value coercion and the nearest-key suggestion.

The recipe schema (:mod:`textclf.config.schema`) and the search space (:mod:`textclf.config.space`) are built with
these, so a YAML file and a ``key=value`` override are checked by the same rules.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any

import yaml

from textclf.errors import ConfigError


class _Yaml12BoolLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's (true/false only): ``eval_strategy: no`` stays the string "no"."""


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Yaml12BoolLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def yaml_load(text: str) -> Any:
    """Parse YAML with YAML 1.2 booleans (only true/false), so values such as ``no`` or ``yes`` stay strings."""
    return yaml.load(text, Loader=_Yaml12BoolLoader)


def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved (``from __future__ import annotations`` leaves them as strings)."""
    return typing.get_type_hints(cls)


def did_you_mean(key: str, known: list[str] | set[str]) -> str:
    """`` (did you mean learning_rate?)`` when ``key`` is close to a known key (difflib's ratio >= 0.6), else ""."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type (``annotation``).

    Booleans take true/false, yes/no, 1/0, on/off; ints take whole floats (``3.0``); ``None``/``null`` fill an
    optional field; a union tries its types in order (``threshold: float | str``).

    Raises:
        ConfigError: ``key=value is not a valid <type>``.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if type(None) in options and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        inner = [a for a in options if a is not type(None)]
        for option in inner[:-1]:  # several types (threshold: float | str): the first that takes the value
            try:
                return coerce(value, option, key)
            except ConfigError:
                pass
        return coerce(value, inner[-1], key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} is not a list")
        (item,) = typing.get_args(annotation)
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    try:
        if annotation is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "yes", "1", "on"):
                return True
            if str(value).lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if annotation is int:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if annotation is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if annotation is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value).lower() if isinstance(value, bool) else str(value)
    except (TypeError, ValueError):
        name = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"{key}={value!r} is not a valid {name}") from None
    return value


def build(cls: type, values: dict[str, Any], where: str, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from plain data, nested dataclasses included, each value coerced.

    Raises:
        ConfigError: an unknown key (naming the nearest known one), a section that is not a mapping, or a value
            that is not of the field's type; ``where`` (a file, or "the command line") is named in the message.
    """
    hints = field_types(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown key '{prefix}{key}' in {where}{did_you_mean(key, known)}: known keys "
                              f"are {', '.join(sorted(known))}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{key} in {where} must be a mapping of keys to values")
            kwargs[key] = build(hints[key], value, where, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = coerce(value, hints[key], f"{prefix}{key}")
    return cls(**kwargs)
