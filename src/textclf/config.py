"""Recipes: plain YAML data validated against typed dataclasses before any work starts.

A recipe is resolved in layers, each overriding the one before:

1. the dataclass defaults below (textclf's fast CPU recipe);
2. the shipped task recipe ``recipes/<task>.yaml`` or the user's own YAML file;
3. the ``preset`` (``reference`` restores the Hugging Face text-classification guide's Trainer settings);
4. ``key=value`` overrides from the command line (``learning_rate=3e-5``, ``data.train_file=x.csv``).

An unknown key fails at once with a :class:`ConfigError` naming the key (the torchtune rule).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from textclf.errors import ConfigError
from textclf.longdoc import DEFAULT_HEAD_TOKENS, DEFAULT_STRIDE, check_truncation


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


DATA_FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
BUNDLED_MODEL = "bundled"
# A Hugging Face Hub repository id: ``name`` (legacy ids such as bert-base-uncased) or ``owner/name``; letters,
# digits, ``-``, ``_`` and ``.`` (huggingface_hub's repo-id rules, simplified).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def is_hub_id(model: str) -> bool:
    """Whether ``model`` reads as a Hub repository id (:data:`HUB_ID`) and is not a local path."""
    return bool(HUB_ID.match(model)) and not Path(model).exists()

# The Trainer settings of the Hugging Face "Text classification" guide and the GLUE notebook
# (lr 2e-5, batch 16, weight decay 0.01, fp32, random sampling, plain AdamW, no warmup).
REFERENCE_PRESET: dict[str, Any] = {
    "learning_rate": 2e-5,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 16,
    "weight_decay": 0.01,
    "warmup_ratio": 0.0,
    "bf16": "false",
    "train_sampling_strategy": "random",
    "optim": "adamw_torch",
    "freeze_embeddings": False,
    "attention_dropout": None,
    "hidden_dropout": None,
    "attn_implementation": "sdpa",
}
PRESETS = {"fast": {}, "reference": REFERENCE_PRESET}


@dataclass
class DataConfig:
    """Where the data comes from when it is not a registry task (or to point a task at a mirror).

    Attributes:
        train_file: the user's own CSV / TSV / JSON Lines / Parquet file with a labelled train split.
        validation_file: a labelled validation file; when None a seeded ``validation_fraction`` of
            train is held out instead.
        test_file: an optional file to evaluate (or predict, if unlabelled) after training.
        text_column: the text column (default ``text``, or ``sentence1`` when a pair is present).
        text_pair_column: the second text column of a sentence pair (default ``sentence2`` if present).
        label_column: the label column (default ``label``): class names, integer ids, float scores
            (regression) or lists of labels (multi-label).
        validation_fraction: fraction in (0, 1) of train held out when there is no validation split.
        data_dir: local dataset mirror with ``<name>/<split>.parquet`` files; default ``$TEXTCLF_DATA_DIR``.
    """

    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    validation_fraction: float = 0.1
    data_dir: str | None = None


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


def parse_space(space: Any) -> list[ParamSpec]:
    """Parse ``search.space``: a mapping of Recipe keys to ``{low, high[, log][, step]}`` or ``{choices: [...]}``.

    Int fields (``seed``, batch sizes) give integer ranges, float fields float ranges; ``step`` makes a grid
    (``num_train_epochs: {low: 1, high: 5, step: 1}``). Values are checked against the field's type here;
    :meth:`SearchConfig.validate` also checks both ends of each range against the rest of the recipe.

    Raises:
        ConfigError: naming ``search.space.<key>``: an unknown or unsearchable key, an unknown spec key, a range
            on a non-numeric key, low >= high, log with low <= 0, log with step, or empty/invalid choices.
    """
    if not isinstance(space, dict):
        raise ConfigError("search.space must be a mapping of recipe keys to {low, high, log} or {choices: [...]}")
    hints = _field_types(Recipe)
    parsed = []
    for name, spec in space.items():
        key = f"search.space.{name}"
        if name not in hints or name in _NOT_SEARCHABLE:
            searchable = sorted(set(hints) - set(_NOT_SEARCHABLE))
            raise ConfigError(f"{key}: {name!r} is not a searchable recipe key: use one of {', '.join(searchable)}")
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
            choices = tuple(_coerce(v, hints[name], f"{key}.choices[{i}]") for i, v in enumerate(spec["choices"]))
            if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                raise ConfigError(f"{key}.choices: only numbers, strings, booleans or null can be choices")
            parsed.append(ParamSpec(name, "categorical", choices=choices))
            continue
        numeric = _numeric_type(hints[name])
        if numeric is None:
            raise ConfigError(f"{key}: {name} is not numeric, so it takes choices: [...], not low/high")
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"{key} needs both low and high (or choices: [...])")
        low, high = (_coerce(spec[k], numeric, f"{key}.{k}") for k in ("low", "high"))
        log = _coerce(spec.get("log", False), bool, f"{key}.log")
        step = None if spec.get("step") is None else _coerce(spec["step"], numeric, f"{key}.step")
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
    """The ``search:`` section of a recipe: what ``textclf search`` tunes and how (see textclf.search).

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

    space: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SPACE.items()})
    n_trials: int = 10  # the reference notebook's n_trials
    fraction: float = 0.1  # the reference notebook searches on 1/10 of train (shard(index=1, num_shards=10))
    pruner: str = "median"
    direction: str = "auto"
    startup_trials: int | None = None
    seed: int = 42
    backend: str = "optuna"
    retrain: bool = True

    def validate(self, recipe: Recipe) -> None:
        """Check the search settings, and both ends of every range (each choice) against ``recipe``.

        Raises:
            ConfigError: naming the ``search.`` key, the bad value and the allowed values.
        """
        choices = {"pruner": ("median", "successive_halving", "none"), "direction": ("auto", "maximize", "minimize"),
                   "backend": ("optuna", "ray")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"search.{key}={getattr(self, key)!r} is not allowed: use one of {', '.join(allowed)}")
        if self.n_trials < 1:
            raise ConfigError(f"search.n_trials={self.n_trials} must be a positive integer")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"search.fraction={self.fraction} must be in (0, 1]")
        if self.startup_trials is not None and self.startup_trials < 0:
            raise ConfigError(f"search.startup_trials={self.startup_trials} must be >= 0 or null")
        bare = dataclasses.replace(recipe, search=SearchConfig(space={}))
        for spec in parse_space(self.space):
            for value in spec.choices or (spec.low, spec.high):
                try:
                    dataclasses.replace(bare, **{spec.name: value}).validate()
                except ConfigError as err:
                    raise ConfigError(f"search.space.{spec.name}: {value!r} is not a valid value ({err})") from None


@dataclass
class Recipe:
    """Everything a training run needs. Field names follow ``transformers.TrainingArguments``.

    The defaults are textclf's fast CPU recipe: bf16 autocast where the CPU has native bf16,
    length-grouped batches (less padding), batch 32 with lr 1e-4 and 6% warmup (RoBERTa, Liu et al. 2019,
    Table 9 uses 6% warmup), fused AdamW. ``preset=reference`` gives the reference guide's settings.
    """

    task: str | None = None
    model: str = BUNDLED_MODEL  # a Hub id, a local checkpoint directory, or "bundled" (all-MiniLM-L6-v2)
    preset: str = "fast"  # "fast" (textclf defaults) or "reference" (the HF guide's Trainer settings)
    max_seq_length: int = 128  # tokens; longer inputs are truncated (SST-2's longest is 66)
    # How a longer text is cut (textclf.longdoc): "head" keeps its first tokens; "head_tail" its first head_tokens
    # and last tokens (Sun et al. 2019, best on IMDb); "chunks" reads every window and averages the windows'
    # logits per document at evaluation. head_tail and chunks are for single texts, not sentence pairs.
    truncation: str = "head"
    head_tokens: int = DEFAULT_HEAD_TOKENS  # head_tail: first tokens kept (Sun et al. 2019: 128 + 382 at 512)
    stride: int = DEFAULT_STRIDE  # chunks: tokens shared by consecutive windows (BERT's SQuAD doc_stride)
    freeze_base: bool = False  # train only the classification head
    # Keep the word-embedding table fixed: half of MiniLM's parameters, so the optimizer step and the dense
    # embedding gradient shrink by half, at no measurable accuracy cost (Lee et al. 2019, "What Would Elsa
    # Do? Freezing Layers During Transformer Fine-Tuning"; benchmarks/train_throughput.py).
    freeze_embeddings: bool = True
    # Dropout on attention probabilities (None: the model's own, 0.1 for BERT). At 0.0, PyTorch's fused CPU
    # attention kernel can run in training: 3.1x faster steps at 512 tokens here (benchmarks/).
    attention_dropout: float | None = 0.0
    # "auto": per batch, eager attention below 448 tokens and SDPA (fused kernel) from there on, the crossover
    # measured for fwd+bwd on this project's CPU; "eager" or "sdpa" to force one (transformers' attn_implementation).
    attn_implementation: str = "auto"
    # Dropout after the embeddings and each sublayer (None: the model's own, 0.1). Off by default: on the CPU the
    # dropout masks cost 28% of a short-sequence step, and SST-2 accuracy after 8,000 examples did not drop.
    hidden_dropout: float | None = 0.0
    max_train_samples: int | None = None  # a seeded random subset of train, for quick runs
    max_eval_samples: int | None = None
    seed: int = 42
    learning_rate: float = 1e-4  # tuned for batch 32 and small encoders (benchmarks/train_throughput.py notes)
    num_train_epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # fraction of training steps
    lr_scheduler_type: str = "linear"
    # Learning-rate ratio between consecutive encoder blocks, head at learning_rate (None or 1.0: off; ELECTRA uses
    # 0.8, Sun et al. 2019 0.95): see textclf.training.layerwise_parameter_groups.
    layerwise_lr_decay: float | None = None
    bf16: str = "auto"  # "auto": on where the CPU/GPU supports bf16 natively; "true"; "false"
    train_sampling_strategy: str = "group_by_length"  # or "random"
    optim: str = "adamw_torch_fused"
    eval_strategy: str = "epoch"  # "epoch", "steps" or "no"
    eval_steps: int | None = None
    logging_steps: int = 50
    save_total_limit: int = 2
    metric_for_best_model: str | None = None  # default: the task's own metric
    # Multi-label decision threshold on each label's sigmoid probability, stored in the checkpoint: "auto" tunes
    # one global threshold after training (the value of metrics.THRESHOLD_GRID with the best validation micro F1),
    # or a number in (0, 1) to fix it. Only for multi-label tasks.
    threshold: float | str = "auto"
    # Loss weights against class imbalance: "none"; "balanced" (n_samples / (n_classes * count_c) from the train
    # labels, sklearn's compute_class_weight formula; multi-label: BCE pos_weight = negatives / positives,
    # clipped to [0.01, 100]); or a list of floats, one per label in label-id order (textclf.losses).
    class_weights: str | list[float] = "none"
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    resume_from_checkpoint: str | None = None  # a checkpoint directory, or "last" for the newest in output_dir
    dataloader_num_workers: int = 0
    torch_num_threads: int | None = None  # default: torch's own (one per physical core)
    # Experiment tracking (textclf.tracking): "none", or a comma list of tensorboard, mlflow, wandb. TensorBoard event
    # files in DIR/tensorboard are local and cost nothing; mlflow and wandb need `pip install textclf[tracking]`.
    report_to: str = "tensorboard"
    # Upload model/ (with its model card) to the Hugging Face Hub after training; needs a token (`hf auth login` or
    # HF_TOKEN), checked before training starts.
    push_to_hub: bool = False
    hub_model_id: str | None = None  # "name" or "owner/name"; default: the run directory's name
    data: DataConfig = field(default_factory=DataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # used by `textclf search` only

    def validate(self) -> None:
        """Check values that types alone cannot.

        Raises:
            ConfigError: naming the key, the bad value and the allowed values.
        """
        choices = {
            "preset": PRESETS,
            "bf16": ("auto", "true", "false"),
            "train_sampling_strategy": ("random", "group_by_length", "sequential"),
            "eval_strategy": ("epoch", "steps", "no"),
            "attn_implementation": ("auto", "eager", "sdpa"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not allowed: use one of {', '.join(allowed)}")
        for key in ("max_seq_length", "per_device_train_batch_size", "per_device_eval_batch_size",
                    "gradient_accumulation_steps", "logging_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        check_truncation(self.truncation, self.max_seq_length, self.head_tokens, self.stride)
        for key in ("max_train_samples", "max_eval_samples", "eval_steps", "early_stopping_patience"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer or null")
        if self.learning_rate <= 0 or self.num_train_epochs <= 0:
            raise ConfigError("learning_rate and num_train_epochs must be > 0")
        for key in ("attention_dropout", "hidden_dropout"):
            if getattr(self, key) is not None and not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be in [0, 1) or null")
        if self.layerwise_lr_decay is not None and not 0 < self.layerwise_lr_decay <= 1:
            raise ConfigError(f"layerwise_lr_decay={self.layerwise_lr_decay} must be in (0, 1] or null")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if not 0 < self.data.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction={self.data.validation_fraction} must be in (0, 1)")
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise ConfigError("eval_strategy=steps needs eval_steps=N")
        if self.early_stopping_patience and self.eval_strategy == "no":
            raise ConfigError("early_stopping_patience needs evaluation: set eval_strategy=epoch or steps")
        from transformers.trainer_utils import SchedulerType
        from transformers.training_args import OptimizerNames

        for key, enum in (("optim", OptimizerNames), ("lr_scheduler_type", SchedulerType)):
            allowed = [member.value for member in enum]
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not known to transformers: use one of "
                                  f"{', '.join(allowed)}")
        if not (self.threshold == "auto" if isinstance(self.threshold, str) else 0 < self.threshold < 1):
            raise ConfigError(f"threshold={self.threshold!r} is not allowed: use auto (tune on the validation split) "
                              "or a number in (0, 1)")
        if isinstance(self.class_weights, str):
            weights_ok = self.class_weights in ("none", "balanced")
        else:
            weights_ok = bool(self.class_weights) and all(math.isfinite(w) and w > 0 for w in self.class_weights)
        if not weights_ok:
            raise ConfigError(f"class_weights={self.class_weights!r} is not allowed: use none, balanced, or a "
                              "list of positive floats, one per label in label-id order (e.g. [1.0, 3.5, 1.0])")
        from textclf.tracking import check_hub_model_id, parse_report_to

        parse_report_to(self.report_to)
        check_hub_model_id(self.hub_model_id)
        if self.task is None and self.data.train_file is None:
            raise ConfigError("nothing to train on: give a task (sst2, cola, ...) or data.train_file=PATH")
        self.search.validate(self)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data, as written to ``config.yaml``."""
        return dataclasses.asdict(self)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if type(None) in options and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        inner = [a for a in options if a is not type(None)]
        for option in inner[:-1]:  # several types (threshold: float | str): the first that takes the value
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        return _coerce(value, inner[-1], key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} is not a list")
        (item,) = typing.get_args(annotation)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
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


def _build(cls: type, values: dict[str, Any], where: str, prefix: str = "") -> Any:
    hints = _field_types(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown key '{prefix}{key}' in {where}: known keys are "
                              f"{', '.join(sorted(known))}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{key} in {where} must be a mapping of keys to values")
            kwargs[key] = _build(hints[key], value, where, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}")
    return cls(**kwargs)


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
            raise ConfigError(f"unknown key {key!r} in override {item!r}: see `textclf train --help` "
                              "or a recipe in recipes/ for the known keys")
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
    from textclf.tasks import get_task

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
    _build(Recipe, layer, where)  # fail on the recipe's own unknown keys before the overrides
    extra = parse_overrides(overrides or [])
    merged = _merge(layer, extra)
    if "space" in extra.get("search", {}):  # a search space given on the command line replaces the recipe's
        merged["search"]["space"] = extra["search"]["space"]
    preset = _coerce(merged.get("preset", "fast"), str, "preset")
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is not allowed: use one of {', '.join(PRESETS)}")
    # The preset beats the shipped task recipe; a user's own recipe file and the overrides beat the preset.
    explicit = set(extra) | (set(layer) if user_file else set())
    for key, value in PRESETS[preset].items():
        if key not in explicit:
            merged[key] = value
    recipe = _build(Recipe, merged, where)
    if recipe.task is not None:
        try:
            recipe.task = get_task(recipe.task).name
        except ValueError as err:
            raise ConfigError(str(err)) from None
    recipe.validate()
    return recipe


def save_recipe(recipe: Recipe, path: Path) -> None:
    """Write the resolved recipe as YAML (atomically: a temporary file, then a rename)."""
    from textclf.files import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(recipe.to_dict(), sort_keys=False))
