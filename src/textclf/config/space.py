"""The search space of ``textclf search``: the ``search:`` section of a recipe and its ``space`` ranges."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from textclf.config.coercion import coerce, did_you_mean, field_types
from textclf.errors import ConfigError

# The default search space (``textclf search``): the reference notebook's knobs (learning rate, epochs, batch
# size, seed: transformers' default_hp_space_optuna) plus weight decay and warmup. Ranges: lr around both the
# reference 2e-5 and textclf's 1e-4 for small encoders; epochs and seed as in default_hp_space_optuna.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"low": 1e-5, "high": 3e-4, "log": True},
    "num_train_epochs": {"low": 1, "high": 5, "step": 1},
    "per_device_train_batch_size": {"choices": [16, 32, 64]},
    "weight_decay": {"low": 0.0, "high": 0.1},
    "warmup_ratio": {"low": 0.0, "high": 0.2},
    "seed": {"low": 1, "high": 40},
}
SPACE_SPEC_KEYS = ("low", "high", "log", "step", "choices")
_NOT_SEARCHABLE = ("task", "preset", "data", "search", "resume_from_checkpoint")


@dataclass(frozen=True)
class ParamSpec:
    """One searched recipe key, parsed from ``search.space``.

    Attributes:
        name: the Recipe field (``learning_rate``).
        kind: ``float`` or ``int`` (a range from ``low`` to ``high``, both included) or ``categorical``.
        low, high: the range's ends; ``log``: sample uniformly in log space; ``step``: a grid step (or None).
        choices: the values of a categorical parameter, coerced to the field's type.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


def _numeric_type(annotation: Any) -> type | None:
    """int or float when a field's annotation is (an optional) int or float, else None."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return options[0] if len(options) == 1 and options[0] in (int, float) else None


def parse_space(space: Any, hints: dict[str, Any]) -> list[ParamSpec]:
    """Parse ``search.space``: a mapping of Recipe keys to ``{low, high[, log][, step]}`` or ``{choices: [...]}``.

    Int fields (``seed``, batch sizes) give integer ranges, float fields float ranges; ``step`` makes a grid
    (``num_train_epochs: {low: 1, high: 5, step: 1}``). ``hints`` are the Recipe's field types
    (:func:`~textclf.config.coercion.field_types`). Values are checked against the field's type here;
    :meth:`SearchConfig.validate` also checks both ends of each range against the rest of the recipe.

    Raises:
        ConfigError: naming ``search.space.<key>``: an unknown or unsearchable key, an unknown spec key, a range
            on a non-numeric key, low >= high, log with low <= 0, log with step, or empty/invalid choices.
    """
    if not isinstance(space, dict):
        raise ConfigError("search.space must be a mapping of recipe keys to {low, high, log} or {choices: [...]}")
    parsed = []
    for name, spec in space.items():
        key = f"search.space.{name}"
        if name not in hints or name in _NOT_SEARCHABLE:
            searchable = sorted(set(hints) - set(_NOT_SEARCHABLE))
            raise ConfigError(f"{key}: {name!r} is not a searchable recipe key{did_you_mean(name, searchable)}: use "
                              f"one of {', '.join(searchable)}")
        if not isinstance(spec, dict) or not spec:
            raise ConfigError(f"{key} must be a mapping such as {{low: 1e-5, high: 3e-4, log: true}} "
                              "or {choices: [16, 32]}")
        unknown = sorted(set(spec) - set(SPACE_SPEC_KEYS))
        if unknown:
            raise ConfigError(f"unknown key '{key}.{unknown[0]}': known keys are {', '.join(SPACE_SPEC_KEYS)}")
        if "choices" in spec:
            if set(spec) != {"choices"}:
                raise ConfigError(f"{key}: give either choices or low/high (with log, step), not both")
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{key}.choices must be a non-empty list")
            choices = tuple(coerce(v, hints[name], f"{key}.choices[{i}]") for i, v in enumerate(spec["choices"]))
            if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                raise ConfigError(f"{key}.choices: only numbers, strings, booleans or null can be choices")
            parsed.append(ParamSpec(name, "categorical", choices=choices))
            continue
        numeric = _numeric_type(hints[name])
        if numeric is None:
            raise ConfigError(f"{key}: {name} is not numeric, so it takes choices: [...], not low/high")
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"{key} needs both low and high (or choices: [...])")
        low, high = (coerce(spec[k], numeric, f"{key}.{k}") for k in ("low", "high"))
        log = coerce(spec.get("log", False), bool, f"{key}.log")
        step = None if spec.get("step") is None else coerce(spec["step"], numeric, f"{key}.step")
        if not low < high:
            raise ConfigError(f"{key}: low={low} must be below high={high}")
        if log and low <= 0:
            raise ConfigError(f"{key}: log=true needs low > 0 (got low={low})")
        if step is not None and (step <= 0 or log):
            raise ConfigError(f"{key}: step={step} must be > 0, and cannot be combined with log=true")
        parsed.append(ParamSpec(name, numeric.__name__, low=low, high=high, log=log, step=step))
    return parsed


@dataclass
class SearchConfig:
    """The ``search:`` section of a recipe: what ``textclf search`` tunes and how (see textclf.training.search).

    Attributes:
        space: recipe keys to ``{low, high, log, step}`` or ``{choices: [...]}`` (see :func:`parse_space`); a
            recipe's own ``space`` replaces the default one as a whole.
        n_trials: finished trials (completed or pruned) the study should hold; a resumed study runs the rest.
        fraction: fraction in (0, 1] of the training split searched on, a seeded subset (the reference
            notebook searches on 1/10 of train); the best configuration is then retrained on all of it.
        pruner: ``median`` (Optuna's MedianPruner), ``successive_halving`` or ``none``; trials report the
            metric after each evaluation (``eval_strategy``), so pruning needs ``epoch`` or ``steps``.
        direction: ``auto`` (from the metric: maximise, except loss/mse), ``maximize`` or ``minimize``.
        startup_trials: random trials before TPE models the results (None: half of n_trials, at most 10,
            Optuna's default; with Optuna's 10 a 10-trial search would be entirely random).
        seed: seeds the TPE sampler and the training-data subset.
        backend: ``optuna`` or ``ray`` (Ray Tune through ``Trainer.hyperparameter_search``; pip extra ``ray``).
        retrain: retrain the best configuration on the full training data into ``OUTPUT/best``.
    """

    space: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SPACE.items()},
        metadata={"help": "recipe keys to {low, high, log, step} or {choices: [...]}; replaces the default space "
                          "(lr, epochs, batch size, weight decay, warmup, seed) as a whole"})
    n_trials: int = field(default=10, metadata={"help": "finished trials (completed or pruned) the study should "
                                                        "hold (the reference notebook's 10)"})
    fraction: float = field(default=0.1, metadata={"help": "seeded fraction in (0, 1] of train searched on (the "
                                                           "reference notebook's 1/10)"})
    pruner: str = field(default="median", metadata={"help": "median, successive_halving or none"})
    direction: str = field(default="auto", metadata={"help": "auto (maximise, except loss/mse), maximize or "
                                                             "minimize"})
    startup_trials: int | None = field(default=None, metadata={"help": "random trials before TPE (null: half of "
                                                                       "n_trials, at most 10)"})
    seed: int = field(default=42, metadata={"help": "seeds the TPE sampler and the training subset"})
    backend: str = field(default="optuna", metadata={"help": "optuna, or ray (pip install 'textclf[ray]')"})
    retrain: bool = field(default=True, metadata={"help": "retrain the best configuration on all of train into "
                                                          "OUTPUT/best"})

    def validate(self, recipe: Any) -> None:
        """Check the search settings, and both ends of every range (each choice) against ``recipe``.

        Raises:
            ConfigError: naming the ``search.`` key, the bad value and the allowed values.
        """
        choices = {"pruner": ("median", "successive_halving", "none"), "direction": ("auto", "maximize", "minimize"),
                   "backend": ("optuna", "ray")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"search.{key}={getattr(self, key)!r} is not allowed: use one of "
                                  f"{', '.join(allowed)}")
        if self.n_trials < 1:
            raise ConfigError(f"search.n_trials={self.n_trials} must be a positive integer")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"search.fraction={self.fraction} must be in (0, 1]")
        if self.startup_trials is not None and self.startup_trials < 0:
            raise ConfigError(f"search.startup_trials={self.startup_trials} must be >= 0 or null")
        bare = dataclasses.replace(recipe, search=SearchConfig(space={}))
        for spec in parse_space(self.space, field_types(type(recipe))):
            for value in spec.choices or (spec.low, spec.high):
                try:
                    dataclasses.replace(bare, **{spec.name: value}).validate()
                except ConfigError as err:
                    raise ConfigError(f"search.space.{spec.name}: {value!r} is not a valid value ({err})") from None
