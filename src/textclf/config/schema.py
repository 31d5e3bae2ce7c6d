"""The recipe schema: typed dataclasses whose fields carry their defaults, the reason for each, and help text.

Every field has ``metadata={"help": ...}`` (as transformers' ``run_classification.py`` arguments do), which
``textclf train --help`` prints with the field's type and default (:func:`textclf.config.recipes.describe_keys`).
Values are checked by :meth:`Recipe.validate` once a recipe is resolved (:func:`textclf.config.load_recipe`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from textclf.config.coercion import field_types
from textclf.config.space import ParamSpec, SearchConfig, parse_space
from textclf.data.lengths import MODEL_INPUT_CAP
from textclf.data.longdoc import DEFAULT_HEAD_TOKENS, DEFAULT_STRIDE, check_truncation
from textclf.errors import ConfigError
from textclf.hub import check_hub_model_id

DATA_FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
BUNDLED_MODEL = "bundled"
TRACKERS = ("tensorboard", "mlflow", "wandb")

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


def _key(default: Any, help: str) -> Any:
    """A dataclass field with its help text (``metadata["help"]``)."""
    return field(default=default, metadata={"help": help})


def parse_report_to(value: str) -> list[str]:
    """The trackers a recipe's ``report_to`` names, in order: ``"none"`` -> ``[]``, ``"tensorboard,wandb"`` ->
    ``["tensorboard", "wandb"]``.

    Raises:
        ConfigError: an unknown tracker, or ``none`` combined with others.
    """
    names = [part.strip().lower() for part in str(value).split(",") if part.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in TRACKERS]
    if not names or unknown:
        raise ConfigError(f"report_to={value!r} is not allowed: use none, or one or more of "
                          f"{', '.join(TRACKERS)} separated by commas (e.g. report_to=tensorboard,wandb)")
    return list(dict.fromkeys(names))


@dataclass
class DataConfig:
    """Where the data comes from when it is not a registry task (or to point a task at a mirror)."""

    train_file: str | None = _key(None, "your own CSV / TSV / JSON Lines / Parquet file with a labelled train split")
    validation_file: str | None = _key(None, "a labelled validation file (null: hold out validation_fraction of "
                                             "train, seeded)")
    test_file: str | None = _key(None, "an optional file to evaluate (or predict, if unlabelled) after training")
    text_column: str | None = _key(None, "the text column (null: text, sentence1+sentence2, or sentence)")
    text_pair_column: str | None = _key(None, "the second text column of a sentence pair (null: sentence2 if "
                                              "present)")
    label_column: str | None = _key(None, "the label column (null: label): class names, integer ids, float scores "
                                          "(regression) or lists (multi-label)")
    validation_fraction: float = _key(0.1, "fraction in (0, 1) of train held out when there is no validation split")
    unlabeled_file: str | None = _key(None, "method=distill: a file of texts without labels (the train file's text "
                                            "columns), labelled by the teacher")
    data_dir: str | None = _key(None, "local dataset mirror with <name>/<split>.parquet files (null: "
                                      "$TEXTCLF_DATA_DIR, else the Hub)")


@dataclass
class Recipe:
    """Everything a training run needs. Field names follow ``transformers.TrainingArguments``.

    The defaults are textclf's fast CPU recipe: bf16 autocast where the CPU has native bf16,
    length-grouped batches (less padding), batch 32 with lr 1e-4 and 6% warmup (RoBERTa, Liu et al. 2019,
    Table 9 uses 6% warmup), fused AdamW. ``preset=reference`` gives the reference guide's settings.
    """

    task: str | None = _key(None, "a registry task (sst2, cola, imdb, ...); null with data.train_file")
    model: str = _key(BUNDLED_MODEL, "a Hub id, a local checkpoint directory, or bundled (all-MiniLM-L6-v2, "
                                     "offline)")
    # auto: SetFit below 128 examples in the rarest class (multi-label: the mean per label), else fine-tuning.
    method: str = _key("auto", "auto (picks by examples per class, logged and in metrics.json; distill when a "
                               "teacher is given), finetune (the Trainer), setfit (contrastive SetFit, then a head), "
                               "head (frozen encoder, logistic regression) or distill (fine-tuning towards a teacher)")
    # auto: textclf.lexical.SPLIT_WORDS_UNKNOWN (the encoder's tokenizer splits > 30% of the training words).
    lexical: str = _key("auto", "head / setfit: add TF-IDF of the encoder's word pieces and words to the head: auto "
                                "(when the encoder's vocabulary does not know the texts' language), true or false")
    teacher: str | None = _key(None, "method=distill: the teacher, a run directory of textclf train, a checkpoint or "
                                     "a Hub id, fine-tuned on this task's labels")
    # Hinton et al. 2015: a weighted average of the two objectives; the soft term is scaled by T^2.
    alpha: float = _key(0.5, "method=distill: weight in [0, 1] of the gold-label loss (the rest goes to the "
                             "teacher's; 0: the teacher only)")
    temperature: float = _key(2.0, "method=distill: softmax temperature T > 0 of the teacher term (single-label)")
    # TinyBERT (Jiao et al. 2020) grew small GLUE sets 20-fold; 4 copies keep the teacher's labelling pass short.
    augment: str = _key("none", "method=distill: new training texts for the teacher to label: none, eda (random word "
                                "swap/deletion) or mlm (masked-LM word replacement with augment_model)")
    augment_copies: int = _key(4, "method=distill with augment: new texts per training text")
    augment_model: str | None = _key(None, "augment=mlm: a masked-LM checkpoint (Hub id or directory, e.g. "
                                           "distilbert-base-uncased)")
    preset: str = _key("fast", "fast (textclf's CPU defaults) or reference (the HF guide's Trainer settings)")
    # auto: textclf.data.lengths (the longest sampled training text, capped at what the model takes).
    max_seq_length: int | str = _key("auto", "tokens per model input; longer inputs are cut; auto: the longest "
                                             "training text's length, capped at the model's (at most 512)")
    # Sun et al. 2019 found head_tail best on IMDb; chunks averages the windows' logits per document.
    truncation: str = _key("auto", "how a longer text is cut: head (first tokens), head_tail (first head_tokens and "
                                   "the last ones), chunks (every window, logits averaged); pairs: head only; auto: "
                                   "chunks when fine-tuning on texts longer than the model takes "
                                   "(max_seq_length=auto), else head")
    head_tokens: int = _key(DEFAULT_HEAD_TOKENS, "head_tail: first tokens kept (Sun et al. 2019: 128 + 382 at 512)")
    stride: int = _key(DEFAULT_STRIDE, "chunks: tokens shared by consecutive windows (BERT's SQuAD doc_stride)")
    freeze_base: bool = _key(False, "train only the classification head")
    # Half of MiniLM's parameters: the optimizer step and the dense embedding gradient shrink by half, at no
    # measurable accuracy cost (Lee et al. 2019, "What Would Elsa Do?"; benchmarks/train_throughput.py).
    freeze_embeddings: bool = _key(True, "keep the word-embedding table fixed (half of MiniLM's parameters; no "
                                         "measurable accuracy cost)")
    # At 0.0, PyTorch's fused CPU attention kernel can run in training: 3.1x faster steps at 512 tokens here.
    attention_dropout: float | None = _key(0.0, "dropout on attention probabilities (null: the model's own, 0.1 "
                                                "for BERT); 0.0 lets the fused attention kernel train")
    # The crossover (448 tokens) was measured for fwd+bwd on this project's CPU.
    attn_implementation: str = _key("auto", "auto (eager below 448 tokens, SDPA from there on, per batch), eager "
                                            "or sdpa")
    # On the CPU the dropout masks cost 28% of a short-sequence step; SST-2 accuracy after 8,000 examples held.
    hidden_dropout: float | None = _key(0.0, "dropout after the embeddings and each sublayer (null: the model's "
                                             "own, 0.1)")
    max_train_samples: int | None = _key(None, "train on a seeded random subset of this many examples")
    max_eval_samples: int | None = _key(None, "evaluate on a seeded random subset of this many examples")
    seed: int = _key(42, "seeds the head's initialisation, the data order and the hold-out split")
    learning_rate: float = _key(1e-4, "peak learning rate (tuned for batch 32 and small encoders)")
    num_train_epochs: float = _key(3.0, "passes over the training data")
    max_steps: int = _key(-1, "optimizer steps; > 0 overrides num_train_epochs")
    # 512 SST-2 sentences: 48 steps (3 epochs) gave 0.773 validation accuracy, 300 steps 0.807 (docs/results.md).
    min_train_steps: int = _key(300, "finetune: at least this many optimizer steps (epochs scale up on small data, "
                                     "evaluating 10 times); 0: off")
    per_device_train_batch_size: int = _key(32, "training examples per step and device")
    per_device_eval_batch_size: int = _key(64, "evaluation examples per forward pass")
    gradient_accumulation_steps: int = _key(1, "micro-batches per optimizer step")
    weight_decay: float = _key(0.01, "AdamW weight decay (not on biases and LayerNorm weights)")
    warmup_ratio: float = _key(0.06, "fraction in [0, 1) of training steps spent warming up the learning rate "
                                     "(RoBERTa's 6%)")
    lr_scheduler_type: str = _key("linear", "a transformers SchedulerType (linear, cosine, constant, ...)")
    # ELECTRA uses 0.8, Sun et al. 2019 0.95 (textclf.training.trainer.layerwise_parameter_groups).
    layerwise_lr_decay: float | None = _key(None, "learning-rate ratio between consecutive encoder blocks, head at "
                                                  "learning_rate (null or 1.0: off; ELECTRA 0.8)")
    bf16: str = _key("auto", "auto (on where the CPU/GPU has native bf16), true or false")
    train_sampling_strategy: str = _key("group_by_length", "group_by_length (less padding), random or sequential")
    optim: str = _key("adamw_torch_fused", "a transformers optimizer name (adamw_torch_fused, adamw_torch, ...)")
    eval_strategy: str = _key("epoch", "when to evaluate and save a checkpoint: epoch, steps or no")
    eval_steps: int | None = _key(None, "steps between evaluations with eval_strategy=steps")
    logging_steps: int = _key(50, "steps between training-loss log entries")
    save_total_limit: int = _key(2, "checkpoints kept in DIR/checkpoints (the best one is never deleted)")
    metric_for_best_model: str | None = _key(None, "the metric that picks the best checkpoint (null: the task's "
                                                   "own, e.g. matthews_correlation for CoLA)")
    threshold: float | str = _key("auto", "multi-label decision threshold: auto (tuned on validation micro F1) or a "
                                          "number in (0, 1)")
    # "balanced" is sklearn's compute_class_weight formula; multi-label: BCE pos_weight = negatives / positives.
    class_weights: str | list[float] = _key("none", "loss weights against imbalance: none, balanced (n / (k * "
                                                    "count)), or one float per label in id order")
    early_stopping_patience: int | None = _key(None, "evaluations without improvement before stopping")
    # Preemption loses at most this much training; a save of the bundled model (weights, AdamW state, RNG) is a few
    # seconds, under 1% of 10 minutes (benchmarks/checkpoint_overhead.py).
    save_minutes: float | None = _key(10.0, "finetune: a resumable checkpoint at least every this many minutes of "
                                            "training, mid-epoch too (0 or null: only at evaluation)")
    resume_from_checkpoint: str | None = _key(None, "a checkpoint directory, or last for the newest complete one "
                                                    "in DIR/checkpoints (textclf train --resume)")
    dataloader_num_workers: int = _key(0, "DataLoader worker processes")
    torch_num_threads: int | None = _key(None, "CPU threads for torch, set by the CLI (null: one per physical core)")
    report_to: str = _key("tensorboard", "none, or a comma list of tensorboard, mlflow, wandb (the last two: pip "
                                         "install 'textclf[tracking]')")
    push_to_hub: bool = _key(False, "upload model/ with its model card to the Hub after training (needs a token)")
    hub_model_id: str | None = _key(None, "name or owner/name on the Hub (null: the run directory's name)")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "the data section (data.train_file, ...)"})
    search: SearchConfig = field(default_factory=SearchConfig,
                                 metadata={"help": "the search section, used by textclf search only"})

    def validate(self) -> None:
        """Check values that types alone cannot.

        Raises:
            ConfigError: naming the key, the bad value and the allowed values.
        """
        choices = {
            "method": ("auto", "finetune", "setfit", "head", "distill"),
            "preset": PRESETS,
            "bf16": ("auto", "true", "false"),
            "lexical": ("auto", "true", "false"),
            "train_sampling_strategy": ("random", "group_by_length", "sequential"),
            "eval_strategy": ("epoch", "steps", "no"),
            "attn_implementation": ("auto", "eager", "sdpa"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not allowed: use one of {', '.join(allowed)}")
        if isinstance(self.max_seq_length, str) and self.max_seq_length != "auto":
            raise ConfigError(f"max_seq_length={self.max_seq_length!r} is not allowed: use a positive integer "
                              "(tokens) or auto")
        for key in ("max_seq_length", "per_device_train_batch_size", "per_device_eval_batch_size",
                    "gradient_accumulation_steps", "logging_steps"):
            if getattr(self, key) != "auto" and getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        # auto: head_tokens and stride are checked alone here; against the length once it is resolved
        check_truncation("head" if self.truncation == "auto" else self.truncation,
                         MODEL_INPUT_CAP if self.max_seq_length == "auto" else self.max_seq_length, self.head_tokens,
                         self.stride)
        if self.save_minutes is not None and self.save_minutes < 0:
            raise ConfigError(f"save_minutes={self.save_minutes} must be >= 0 (0 or null: save at evaluation only)")
        if self.min_train_steps < 0:
            raise ConfigError(f"min_train_steps={self.min_train_steps} must be 0 (off) or a positive integer")
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
        if not 0 <= self.alpha <= 1 or self.temperature <= 0:
            raise ConfigError(f"alpha={self.alpha}, temperature={self.temperature}: alpha must be in [0, 1] and "
                              "temperature > 0")
        if self.method == "distill" and not self.teacher:
            raise ConfigError("method=distill needs a teacher: teacher=RUN_DIR_OR_CHECKPOINT (textclf distill ... "
                              "--teacher PATH)")
        if self.augment not in ("none", "eda", "mlm") or self.augment_copies < 1:
            raise ConfigError(f"augment={self.augment!r}, augment_copies={self.augment_copies}: use augment=none, eda "
                              "or mlm and a positive augment_copies")
        if self.augment != "none" and not self.teacher:
            raise ConfigError(f"augment={self.augment} is for method=distill (a teacher labels the new texts), and no "
                              "teacher is given: set teacher=RUN_DIR_OR_CHECKPOINT, or augment=none")
        if self.augment == "mlm" and not self.augment_model:
            raise ConfigError("augment=mlm needs augment_model=A_MASKED_LM (e.g. distilbert-base-uncased), or use "
                              "augment=eda")
        if self.data.unlabeled_file and not self.teacher:
            raise ConfigError("data.unlabeled_file is for method=distill (a teacher labels its texts), and no "
                              "teacher is given: set teacher=RUN_DIR_OR_CHECKPOINT, or remove data.unlabeled_file")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if not 0 < self.data.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction={self.data.validation_fraction} must be in (0, 1)")
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise ConfigError("eval_strategy=steps needs eval_steps=N")
        if self.early_stopping_patience and self.eval_strategy == "no":
            raise ConfigError("early_stopping_patience needs evaluation: set eval_strategy=epoch or steps")
        from transformers.trainer_utils import SchedulerType  # transformers at validation, not at import
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
        parse_report_to(self.report_to)
        check_hub_model_id(self.hub_model_id)
        if self.task is None and self.data.train_file is None:
            raise ConfigError("nothing to train on: give a task (sst2, cola, ...) or data.train_file=PATH")
        self.search.validate(self)

    def search_space(self) -> list[ParamSpec]:
        """The parsed ``search.space`` (:func:`textclf.config.space.parse_space`)."""
        return parse_space(self.search.space, field_types(Recipe))

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data, as written to ``config.yaml``."""
        return dataclasses.asdict(self)
