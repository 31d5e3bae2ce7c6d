"""The recipe schema carries its help text; `textclf train --help` prints every key; unknown keys get a suggestion."""

from __future__ import annotations

import dataclasses

import pytest

from textclf.cli import main
from textclf.config import DataConfig, Recipe, SearchConfig, describe_keys, load_recipe, parse_overrides
from textclf.errors import ConfigError


def all_keys() -> list[str]:
    keys = [f.name for f in dataclasses.fields(Recipe) if f.name not in ("data", "search")]
    keys += [f"data.{f.name}" for f in dataclasses.fields(DataConfig)]
    return keys + [f"search.{f.name}" for f in dataclasses.fields(SearchConfig)]


def test_every_recipe_field_has_help_text():
    for cls in (Recipe, DataConfig, SearchConfig):
        missing = [f.name for f in dataclasses.fields(cls) if len(f.metadata.get("help", "")) < 10]
        assert not missing, (cls.__name__, missing)


def test_describe_keys_gives_type_default_and_help_in_declaration_order():
    rows = {key: (kind, default, text) for key, kind, default, text in describe_keys()}
    assert list(rows) == all_keys()
    assert rows["learning_rate"][:2] == ("float", "0.0001")
    assert rows["max_train_samples"][:2] == ("int | None", "null")
    assert rows["freeze_embeddings"][1] == "true" and rows["data.validation_fraction"][1] == "0.1"
    assert "peak learning rate" in rows["learning_rate"][2]


def test_train_help_lists_every_recipe_key(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for key in all_keys():
        assert f"\n  {key} (" in out, key
    assert "learning_rate (float, default 0.0001)" in out


@pytest.mark.parametrize("item, suggestion", [("learning_rat=1e-4", "learning_rate"),
                                              ("num_train_epoch=2", "num_train_epochs"),
                                              ("data.text_colum=review", "data.text_column"),
                                              ("serch.n_trials=3", "search.n_trials")])
def test_an_unknown_override_suggests_the_nearest_key(item, suggestion):
    with pytest.raises(ConfigError, match=f"did you mean {suggestion}\\?"):
        parse_overrides([item])


def test_an_unknown_yaml_key_suggests_the_nearest_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("task: sst2\nlearnig_rate: 1.0e-4\n")
    with pytest.raises(ConfigError, match="did you mean learning_rate\\?"):
        load_recipe(str(path))


def test_a_key_far_from_every_known_one_gets_no_suggestion():
    with pytest.raises(ConfigError) as err:
        parse_overrides(["zzzz=1"])
    assert "did you mean" not in str(err.value)


def test_an_unknown_search_space_key_suggests_the_nearest_key():
    with pytest.raises(ConfigError, match="did you mean learning_rate\\?"):
        load_recipe("sst2", ["search.space={learnin_rate: {low: 1e-5, high: 1e-3}}"])
