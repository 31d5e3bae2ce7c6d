"""Recipes: plain YAML data validated against typed dataclasses before any work starts.

- :mod:`~textclf.config.schema`: the ``Recipe`` and ``DataConfig`` dataclasses, each field with its help text;
- :mod:`~textclf.config.space`: the ``search:`` section and its parameter ranges;
- :mod:`~textclf.config.coercion`: YAML 1.2 booleans, value coercion, the nearest-key suggestion;
- :mod:`~textclf.config.recipes`: resolving a recipe (task, YAML file, preset, overrides) and writing it back.

The names below are the public API (``from textclf.config import load_recipe``).
"""

from textclf.config.coercion import yaml_load
from textclf.config.recipes import describe_keys, load_recipe, parse_overrides, save_recipe
from textclf.config.schema import BUNDLED_MODEL, DATA_FILE_SUFFIXES, DataConfig, Recipe, parse_report_to
from textclf.config.space import DEFAULT_SPACE, ParamSpec, SearchConfig, parse_space

__all__ = ["BUNDLED_MODEL", "DATA_FILE_SUFFIXES", "DEFAULT_SPACE", "DataConfig", "ParamSpec", "Recipe", "SearchConfig",
           "describe_keys", "load_recipe", "parse_overrides", "parse_report_to", "parse_space", "save_recipe",
           "yaml_load"]
