"""Resolve a recipe: shipped task recipes, user YAML files, presets and ``key=value`` overrides, in layers.

A recipe is resolved in layers, each overriding the one before:

1. the dataclass defaults (:mod:`textclf.config.schema`: textclf's fast CPU recipe);
2. the shipped task recipe ``recipes/<task>.yaml`` or the user's own YAML file;
3. the ``preset`` (``reference`` restores the Hugging Face text-classification guide's Trainer settings);
4. ``key=value`` overrides from the command line (``learning_rate=3e-5``, ``data.train_file=x.csv``).

An unknown key fails at once with a :class:`ConfigError` naming the key and the nearest known one (the torchtune
rule).
"""

from __future__ import annotations

import dataclasses
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from textclf.config.coercion import build, coerce, did_you_mean, field_types, yaml_load
from textclf.config.schema import DATA_FILE_SUFFIXES, PRESETS, DataConfig, Recipe
from textclf.config.space import SearchConfig
from textclf.errors import ConfigError
from textclf.files import atomic_write_text
from textclf.tasks import get_task


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings into a nested dict; values are read as YAML scalars.

    A bare key that is not a top-level field but names exactly one field of ``data`` is placed there,
    so ``train_file=x.csv`` means ``data.train_file=x.csv``.

    Raises:
        ConfigError: an item without ``=``, with an unknown key, or with a value that is not YAML.
    """
    top = {f.name for f in dataclasses.fields(Recipe)}
    data_keys = {f.name for f in dataclasses.fields(DataConfig)}
    nested = {"data": data_keys, "search": {f.name for f in dataclasses.fields(SearchConfig)}}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. learning_rate=3e-5)")
        try:
            value = yaml_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(err).splitlines()[0]}): quote "
                              f"it, e.g. {key}='\"...\"'") from None
        parts = key.split(".")
        if len(parts) == 1 and parts[0] not in top and parts[0] in data_keys:
            parts = ["data", parts[0]]
        if parts[0] not in top or (len(parts) == 2 and parts[1] not in nested.get(parts[0], {parts[1]})) \
                or len(parts) > 2:
            known = top | data_keys | {f"{section}.{k}" for section, keys in nested.items() for k in keys}
            raise ConfigError(f"unknown key {key!r} in override {item!r}{did_you_mean(key, known)}: see "
                              "`textclf train --help` for the known keys")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a recipe file as a mapping.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or is not a mapping.
    """
    if not path.is_file():
        raise ConfigError(f"recipe file {path} does not exist")
    try:
        loaded = yaml_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not a valid YAML recipe: {err}".splitlines()[0]) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    return loaded


def shipped_recipe(task_name: str) -> Path | None:
    """Path of the recipe shipped for a registry task, or None."""
    path = resources.files("textclf") / "recipes" / f"{task_name}.yaml"
    return Path(str(path)) if path.is_file() else None


def load_recipe(source: str, overrides: list[str] | None = None) -> Recipe:
    """Resolve a recipe from a task name, a YAML file or a data file, then apply overrides.

    Args:
        source: a registry task (``sst2``), a ``.yaml`` recipe, or a data file
            (``.csv``/``.tsv``/``.jsonl``/``.json``/``.parquet``) to train on.
        overrides: ``key=value`` strings (see :func:`parse_overrides`).

    Returns:
        A validated :class:`Recipe`.

    Raises:
        ConfigError: unknown keys, bad values, or an unknown task (the message names the fix).
    """
    layer: dict[str, Any]
    where = "the command line"
    path = Path(source)
    user_file = path.suffix.lower() in (".yaml", ".yml")
    if path.suffix.lower() in (".yaml", ".yml"):
        layer, where = read_yaml(path), str(path)
    elif path.suffix.lower() in DATA_FILE_SUFFIXES:
        layer = {"data": {"train_file": source}}
    else:
        try:
            spec = get_task(source)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        recipe_path = shipped_recipe(spec.name)
        layer = read_yaml(recipe_path) if recipe_path else {}
        where = str(recipe_path) if recipe_path else where
        layer["task"] = spec.name
    build(Recipe, layer, where)  # fail on the recipe's own unknown keys before the overrides
    extra = parse_overrides(overrides or [])
    merged = _merge(layer, extra)
    if "space" in extra.get("search", {}):  # a search space given on the command line replaces the recipe's
        merged["search"]["space"] = extra["search"]["space"]
    preset = coerce(merged.get("preset", "fast"), str, "preset")
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is not allowed: use one of {', '.join(PRESETS)}")
    # The preset beats the shipped task recipe; a user's own recipe file and the overrides beat the preset.
    explicit = set(extra) | (set(layer) if user_file else set())
    for key, value in PRESETS[preset].items():
        if key not in explicit:
            merged[key] = value
    recipe = build(Recipe, merged, where)
    if recipe.task is not None:
        try:
            recipe.task = get_task(recipe.task).name
        except ValueError as err:
            raise ConfigError(str(err)) from None
    recipe.validate()
    return recipe


def save_recipe(recipe: Recipe, path: Path) -> None:
    """Write the resolved recipe as YAML (atomically: a temporary file, then a rename)."""
    atomic_write_text(path, yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "") if not isinstance(annotation, type) else annotation.__name__


def describe_keys(cls: type = Recipe, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Every recipe key as ``(key, type, default, help)``, nested sections as ``data.<key>`` / ``search.<key>``,
    in declaration order: what ``textclf train --help`` prints."""
    hints = field_types(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            rows += describe_keys(hints[f.name], prefix=f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "null" if default is None else ("(see help)" if isinstance(default, dict) else
                                               str(default).lower() if isinstance(default, bool) else str(default))
        rows.append((f"{prefix}{f.name}", _type_name(hints[f.name]), shown, f.metadata.get("help", "")))
    return rows


def keys_help(width: int = 120) -> str:
    """The recipe keys as an indented text block for ``--help`` (see :func:`describe_keys`)."""
    lines = ["recipe keys (key=value overrides; a YAML recipe takes the same keys, data.* and search.* as sections):"]
    for key, kind, default, text in describe_keys():
        lines.append(f"  {key} ({kind}, default {default})")
        lines += textwrap.wrap(text, width=width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
