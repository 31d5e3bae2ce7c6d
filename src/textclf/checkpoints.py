"""Check a model directory before anything is loaded from it: nothing runs that nobody asked to run, and a partial
or foreign directory fails with one error that names it, what is missing and the fix.

- Weights only from safetensors. A pickle file (``pytorch_model.bin``, ``*.pt``, ``*.pkl``, joblib) can run any code
  when it is unpickled, so it is refused unless the caller allows it (``allow_pickle=True``, or the environment
  variable :data:`ALLOW_PICKLE_ENV` set to 1); even then only transformers' own ``pytorch_model.bin`` is loaded.
- No custom code. A config with ``auto_map`` points at Python files of the model's repository that transformers
  imports when ``trust_remote_code=True``; it is refused unless trusted (``trust_remote_code=True``, or
  :data:`TRUST_REMOTE_CODE_ENV` set to 1). transformers itself, given ``trust_remote_code=False``, silently builds
  its own class for a model_type it knows and skips the custom code: a different model from the one trained.
- A checkpoint is complete (:func:`validate_checkpoint`): config.json with consistent id2label/label2id, a
  tokenizer, and the weights of its kind (:data:`CHECKPOINT_KINDS`), each file whole.

The loaders (:mod:`textclf.modeling`, :class:`~textclf.inference.predictor.Predictor`) call these checks and pass
transformers the matching switches (:func:`loading_kwargs`: ``use_safetensors``, ``trust_remote_code``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.errors import ModelError
from textclf.files import atomic_write_text
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

ALLOW_PICKLE_ENV = "TEXTCLF_ALLOW_PICKLE"
TRUST_REMOTE_CODE_ENV = "TEXTCLF_TRUST_REMOTE_CODE"
_TRUE = ("1", "true", "yes")

ONNX_FILE = "model.onnx"  # textclf export --format onnx
EMBEDDING_HEAD_FILE = "head.safetensors"  # weight (num_labels, hidden_size), bias (num_labels,): float32
EMBEDDING_METHODS = ("head", "setfit")  # the methods whose checkpoint is an encoder, a pooling and a linear head
MANIFEST = "textclf-checkpoint.json"  # a Trainer checkpoint's file list, written last (training.checkpointing)
TORCH, EMBEDDING, ONNX = "torch", "embedding", "onnx"
CHECKPOINT_KINDS = (TORCH, EMBEDDING, ONNX)  # what validate_checkpoint returns

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")  # what transformers loads, single or sharded
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")  # what it loads with use_safetensors=False
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")
# A Trainer checkpoint's optimizer, scheduler, RNG and argument pickles: resume state, never weights, never loaded here.
_TRAINER_STATE = re.compile(r"^(optimizer\.pt|scheduler\.pt|scaler\.pt|training_args\.bin|rng_state(_\d+)?\.pth)$")
TOKENIZER_VOCAB_FILES = ("vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
RUN_FILES = ("metrics.json", "config.yaml", "predictions.jsonl", "log_history.json", "report.md")
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_OPT_IN_PICKLE = f"allow_pickle=True (textclf --allow-pickle, or {ALLOW_PICKLE_ENV}=1)"
_OPT_IN_CODE = f"trust_remote_code=True (textclf --trust-remote-code, or {TRUST_REMOTE_CODE_ENV}=1)"


def pickle_allowed(allow_pickle: bool = False) -> bool:
    """Whether pickle weights may be loaded: ``allow_pickle``, or :data:`ALLOW_PICKLE_ENV` is 1 (or true, yes)."""
    return allow_pickle or os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in _TRUE


def remote_code_trusted(trust_remote_code: bool = False) -> bool:
    """Whether a model's own Python code may run: ``trust_remote_code``, or :data:`TRUST_REMOTE_CODE_ENV` is 1."""
    return trust_remote_code or os.environ.get(TRUST_REMOTE_CODE_ENV, "").strip().lower() in _TRUE


def loading_kwargs(allow_pickle: bool = False, trust_remote_code: bool = False) -> dict[str, Any]:
    """The keyword arguments a model's ``from_pretrained`` gets: ``use_safetensors=True`` (transformers then raises
    OSError rather than read a ``.bin``) unless pickle is allowed (None: transformers' own order, safetensors
    first), and ``trust_remote_code`` as allowed (always a bool: None would make transformers prompt on stdin)."""
    return {"use_safetensors": None if pickle_allowed(allow_pickle) else True,
            "trust_remote_code": remote_code_trusted(trust_remote_code)}


@dataclass(frozen=True)
class _Problem:
    what: str  # what is missing or wrong, e.g. "no tokenizer (tokenizer.json)"
    fix: str


def validate_checkpoint(path: str | Path, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> str:
    """Check that ``path`` is a complete checkpoint for prediction before anything is loaded from it.

    A checkpoint is a directory with config.json (a transformers config; id2label with ids 0..n-1, label2id its
    inverse, num_labels n when given; problem_type one of :data:`PROBLEM_TYPES` or absent), a tokenizer
    (tokenizer.json, or tokenizer_config.json with a vocabulary file), and the weights of its kind: ``model.onnx``
    for an ONNX export; the encoder's safetensors and :data:`EMBEDDING_HEAD_FILE` (and the pooling described by
    ``modules.json``) for method=head / setfit; else the safetensors weights of a ``*ForSequenceClassification``
    model. A Trainer ``checkpoint-N`` directory qualifies when complete (its :data:`MANIFEST`, if any, matches).
    Only file headers are read (safetensors headers, JSON files), no weights.

    Args:
        allow_pickle: accept a ``pytorch_model.bin`` as the weights (also :data:`ALLOW_PICKLE_ENV`).
        trust_remote_code: accept custom code: ``auto_map`` in config.json or tokenizer_config.json, a module type
            of its own in modules.json (also :data:`TRUST_REMOTE_CODE_ENV`).

    Returns:
        The kind: ``"torch"``, ``"embedding"`` or ``"onnx"`` (:data:`CHECKPOINT_KINDS`).

    Raises:
        ModelError: one error naming ``path``, what is wrong and the fix, when ``path`` does not exist or is not a
            checkpoint directory (empty; a run directory: give RUN/model; a ``checkpoints`` folder; a base encoder
            without a classification head), is partial (no tokenizer, no weights, a damaged or inconsistent
            config.json, a truncated weights file, files missing against its manifest), holds only pickle weights
            (unless allowed), or has custom code (unless trusted).
    """
    path = Path(path)
    config = _checkpoint_config(path)
    _check_remote_code(path, config, remote_code_trusted(trust_remote_code), f"{path}:")
    meta = config.get("textclf") if isinstance(config.get("textclf"), dict) else {}
    if (path / ONNX_FILE).is_file():
        kind = ONNX
    elif (path / EMBEDDING_HEAD_FILE).is_file() or meta.get("method") in EMBEDDING_METHODS:
        kind = EMBEDDING
    else:
        kind = TORCH
        architectures = config.get("architectures") or []
        if architectures and not any(str(a).endswith("ForSequenceClassification") for a in architectures):
            raise ModelError(f"{path} holds a {architectures[0]}, a model without a classification head, not a "
                             f"classifier checkpoint: train a classifier from it (textclf train DATA model={path}), "
                             "or give the `model` directory of a run")
    problems = _manifest_problems(path) + _label_problems(config) + _tokenizer_problems(path, meta)
    if kind == ONNX:
        if (path / ONNX_FILE).stat().st_size == 0:
            problems.append(_Problem(f"{ONNX_FILE} is empty", "export it again (textclf export CHECKPOINT)"))
    else:
        problems += _weights_problems(path, config, pickle_allowed(allow_pickle), f"{path}:")
    if kind == EMBEDDING:
        problems += _embedding_problems(path, config)
    if problems:
        fixes = " ".join(dict.fromkeys(p.fix for p in problems))
        raise ModelError(f"{path} is not a complete checkpoint: {'; '.join(p.what for p in problems)}. Fix: {fixes}")
    return kind


def check_model_dir(path: str | Path, *, weights: bool = True, tokenizer: bool = False, allow_pickle: bool = False,
                    trust_remote_code: bool = False) -> None:
    """Check a local directory that a model (to fine-tune, or a sentence encoder) or a tokenizer is about to be
    loaded from: config.json parses as a transformers config (at the top, or in the Transformer module of an older
    sentence-transformers layout), no custom code unless trusted, and (``weights``) whole safetensors weights, also
    in the sentence-transformers modules it lists, unless pickle is allowed, and (``tokenizer``) a tokenizer.
    Label maps are not required: training writes its own.

    Args:
        allow_pickle: accept ``pytorch_model.bin`` weights (the caller resolves :data:`ALLOW_PICKLE_ENV` or not:
            it is read here too).
        trust_remote_code: accept custom code (``auto_map``, own module types; also :data:`TRUST_REMOTE_CODE_ENV`).

    Raises:
        ModelError: "cannot load model DIR: ..." naming what is missing or refused and the fix: no config.json (a
            run directory: give RUN/model), a damaged config, missing or truncated weights, only pickle weights or
            custom code (unless allowed), no tokenizer.
    """
    path = Path(path)
    label = f"cannot load model {str(path)!r}:"
    model_dir = path if (path / "config.json").is_file() else _transformer_dir(path)
    if model_dir is None and (path / "model" / "config.json").is_file():
        raise ModelError(f"{label} it is a textclf run directory, not a model directory: give RUN/model, here "
                         f"{path / 'model'}")
    if model_dir is None:
        raise ModelError(f"{label} it is a local path but not a model directory (no config.json; {_contents(path)}). "
                         "Fix: give model=bundled (offline all-MiniLM-L6-v2), a complete model directory "
                         "(config.json, safetensors weights, tokenizer), or a Hub id with network access")
    config, problems = _read_config(model_dir)
    if config is not None:
        _check_remote_code(model_dir, config, remote_code_trusted(trust_remote_code), label)
        if weights:
            for module in dict.fromkeys([model_dir, *_module_dirs(path)]):
                problems += _weights_problems(module, config, pickle_allowed(allow_pickle), label,
                                              "" if module == path else module.name)
        if tokenizer:
            problems += _tokenizer_problems(model_dir, {})
    if problems:
        fixes = " ".join(dict.fromkeys(p.fix for p in problems))
        raise ModelError(f"{label} it is a local path but not a complete model directory: "
                         f"{'; '.join(p.what for p in problems)}. Fix: {fixes}")


def check_loaded_config(model: str, config: Any, trust_remote_code: bool = False) -> None:
    """After a config came from the Hub (loaded with ``trust_remote_code=False``, so none of its code ran): refuse
    one that declares custom code (``auto_map``) unless trusted, rather than let transformers' own class stand in.

    Raises:
        ModelError: the config has ``auto_map`` and custom code is not trusted.
    """
    auto_map = getattr(config, "auto_map", None)
    if auto_map and not remote_code_trusted(trust_remote_code):
        raise ModelError(_remote_code_message(f"cannot load model {model!r}:", "its config.json", auto_map,
                                              f"https://huggingface.co/{model}"))


def hub_pickle_message(model: str) -> str:
    """The error for a Hub model with no safetensors weights (transformers raised OSError under
    ``use_safetensors=True``)."""
    return (f"cannot load model {model!r}: it has no safetensors weights on the Hugging Face Hub (only pickle, e.g. "
            "pytorch_model.bin, which can run arbitrary code when loaded); textclf loads safetensors only. Fix: use "
            "a copy with safetensors weights (convert it once: from_pretrained(..., use_safetensors=False)"
            ".save_pretrained(DIR), then give model=DIR), or, if you trust the repository, "
            f"{_OPT_IN_PICKLE}")


def _contents(path: Path) -> str:
    if not path.exists():
        return "it does not exist"
    if not path.is_dir():
        return "it is a file"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "it is empty"
    return "it holds " + ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _checkpoint_config(path: Path) -> dict[str, Any]:
    """config.json of a checkpoint directory, after telling apart what is not one (missing, a file, a run
    directory, a ``checkpoints`` folder, a directory without config.json)."""
    if (path / "config.json").is_file():
        config, problems = _read_config(path)
        if config is None:
            raise ModelError(f"{path} is not a complete checkpoint: {problems[0].what}. Fix: {problems[0].fix}")
        return config
    train_hint = "give the `model` directory that `textclf train` wrote, e.g. runs/sst2/model"
    if (path / "model").is_dir() or any((path / name).is_file() for name in RUN_FILES):
        if (path / "model" / "config.json").is_file():
            raise ModelError(f"{path} is a textclf run directory, not a checkpoint directory: give RUN/model, "
                             f"here {path / 'model'}")
        raise ModelError(f"{path} is a textclf run directory without its checkpoint (no model/config.json; a search "
                         f"trial keeps none), not a checkpoint directory: {train_hint} of a run that has one")
    steps = sorted((int(m.group(1)), p) for p in path.iterdir()
                   if p.is_dir() and (m := _CHECKPOINT_DIR.match(p.name))) if path.is_dir() else []
    if steps:
        raise ModelError(f"{path} holds Trainer checkpoints, it is not a checkpoint directory: give one of them "
                         f"(newest: {steps[-1][1]}), or the run's model/ directory (the best one)")
    raise ModelError(f"{path} is not a checkpoint directory (no config.json; {_contents(path)}): {train_hint}")


def _read_config(path: Path) -> tuple[dict[str, Any] | None, list[_Problem]]:
    fix = "copy the directory again from where it was written, or train again"
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return None, [_Problem(f"config.json cannot be read ({err})", fix)]
    except json.JSONDecodeError as err:
        return None, [_Problem(f"config.json is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})",
                               fix)]
    if not isinstance(config, dict) or "model_type" not in config:
        return None, [_Problem("config.json is not a transformers model config (no model_type)",
                               "give a directory written by save_pretrained (textclf train writes one)")]
    return config, []


def _check_remote_code(path: Path, config: dict[str, Any], trusted: bool, label: str) -> None:
    if trusted:
        return
    tokenizer_config = _json_or_empty(path / "tokenizer_config.json")
    for name, settings in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        if isinstance(settings, dict) and settings.get("auto_map"):
            raise ModelError(_remote_code_message(label, name, settings["auto_map"], str(path)))
    modules = _json_or_empty(path / "modules.json")  # sentence-transformers imports a module type it does not ship
    custom = [str(m.get("type")) for m in modules if isinstance(m, dict)
              and not str(m.get("type", "")).startswith("sentence_transformers.")] if isinstance(modules, list) else []
    if custom:
        raise ModelError(_remote_code_message(label, "modules.json", f"module type {custom[0]}", str(path)))


def _remote_code_message(label: str, where: str, code: Any, source: str) -> str:
    """``code``: an ``auto_map`` (class name -> "module.Class", or [slow, fast] for tokenizers), or a string."""
    if isinstance(code, dict):
        refs = {ref for value in code.values() for ref in (value if isinstance(value, list) else [value]) if ref}
        code = "auto_map: " + ", ".join(sorted(map(str, refs)))
    return (f"{label} {where} declares custom code ({code}), Python files that loading would run; textclf does not "
            f"run a model's own code unless asked. Fix: read that code ({source}) and, if you trust it, "
            f"{_OPT_IN_CODE}; or use a model that transformers supports natively")


def _json_or_empty(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def write_manifest(checkpoint: Path, global_step: int) -> None:
    """Record every file of ``checkpoint`` with its size in bytes as :data:`MANIFEST` (the format
    :func:`read_manifest` reads), atomically; call it once everything else of the checkpoint is written."""
    files = {str(p.relative_to(checkpoint)): p.stat().st_size for p in sorted(checkpoint.rglob("*"))
             if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    atomic_write_text(checkpoint / MANIFEST, json.dumps({"global_step": global_step, "files": files}, indent=1))


def read_manifest(path: Path) -> dict[str, int] | None:
    """The file sizes (bytes, by path relative to ``path``) that checkpoint ``path``'s :data:`MANIFEST` records; None
    when it has none.

    Raises:
        ValueError: the manifest is there but damaged.
    """
    if not (path / MANIFEST).is_file():
        return None
    try:
        files = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["files"]
        return {str(name): int(size) for name, size in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path / MANIFEST} is damaged: {err}") from None


def manifest_mismatches(path: Path, files: dict[str, int]) -> list[str]:
    """The files of ``files`` (a :func:`read_manifest`) missing from ``path`` or of another size, sorted."""
    return sorted(name for name, size in files.items()
                  if not (path / name).is_file() or (path / name).stat().st_size != size)


def _manifest_problems(path: Path) -> list[_Problem]:
    """A Trainer checkpoint whose :data:`MANIFEST` does not match its files was stopped while being saved."""
    fix = "give an earlier checkpoint-N, or the run's model/ directory"
    try:
        files = read_manifest(path)
    except ValueError:
        return [_Problem(f"{MANIFEST} is damaged", fix)]
    wrong = manifest_mismatches(path, files) if files is not None else []
    if not wrong:
        return []
    return [_Problem(f"files missing or cut short against {MANIFEST}: {', '.join(wrong[:5])} (it was being "
                     "saved when the run stopped)", fix)]


def _label_problems(config: dict[str, Any]) -> list[_Problem]:
    fix = ("write id2label and label2id into config.json from one list of class names (id2label {\"0\": NAME, ...}, "
           "label2id its inverse), or train again")
    id2label, label2id = config.get("id2label"), config.get("label2id")
    if not isinstance(id2label, dict) or not id2label:
        return [_Problem("config.json has no id2label", fix)]
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        return [_Problem(f"config.json id2label keys {sorted(map(str, id2label))[:5]} are not class ids", fix)]
    if not all(isinstance(name, str) for name in id2label.values()):
        return [_Problem("config.json id2label names are not all strings", fix)]
    problems = []
    if ids != list(range(len(ids))):
        problems.append(_Problem(f"config.json id2label ids {ids[:6]} are not 0..{len(ids) - 1}", fix))
    inverse = {name: int(k) for k, name in id2label.items()}
    if len(inverse) != len(id2label):
        problems.append(_Problem("config.json id2label gives two classes the same name", fix))
    if not isinstance(label2id, dict):
        problems.append(_Problem("config.json has no label2id", fix))
    elif label2id != inverse:
        wrong = sorted({str(n) for n in {*inverse, *label2id} if inverse.get(n) != label2id.get(n)})
        problems.append(_Problem(f"config.json label2id is not the inverse of id2label (they disagree on "
                                 f"{', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''})", fix))
    num_labels = config.get("num_labels")
    if num_labels is not None and num_labels != len(id2label):
        problems.append(_Problem(f"config.json num_labels={num_labels} but id2label has {len(id2label)} entries",
                                 fix))
    problem_type = config.get("problem_type")
    if problem_type is not None and problem_type not in PROBLEM_TYPES:
        problems.append(_Problem(f"config.json problem_type={problem_type!r} is none of {', '.join(PROBLEM_TYPES)}",
                                 "set problem_type in config.json to one of them"))
    elif problem_type == REGRESSION and len(id2label) != 1:
        problems.append(_Problem(f"config.json problem_type=regression with {len(id2label)} outputs, not 1", fix))
    return problems


def _tokenizer_problems(path: Path, meta: dict[str, Any]) -> list[_Problem]:
    base = meta.get("base_model") or "BASE_MODEL"
    fix = (f"save the tokenizer it was trained with into it (AutoTokenizer.from_pretrained({base!r})"
           f".save_pretrained({str(path)!r}))")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (path / name).is_file():
            try:
                json.loads((path / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return [_Problem(f"{name} is damaged (not valid JSON)", fix)]
    if (path / "tokenizer.json").is_file():
        return []
    if (path / "tokenizer_config.json").is_file() and any((path / n).is_file() for n in TOKENIZER_VOCAB_FILES):
        return []
    return [_Problem("no tokenizer (tokenizer.json, or tokenizer_config.json with a vocabulary file such as "
                     "vocab.txt)", fix)]


def _weights_problems(path: Path, config: dict[str, Any], pickle_ok: bool, label: str,
                      module: str = "") -> list[_Problem]:
    """Problems with the weights of ``path``: a model directory, or the sentence-transformers ``module`` directory
    of one (``2_Dense``).

    Raises:
        ModelError: only pickle weights there (unless ``pickle_ok`` and transformers can load them).
    """
    fix = "copy the directory again from where it was written, or train again"
    if (path / SAFE_WEIGHTS[0]).is_file():
        return _safetensors_problems(path, [SAFE_WEIGHTS[0]], fix)
    if (path / SAFE_WEIGHTS[1]).is_file():
        try:
            shards = sorted(set(json.loads((path / SAFE_WEIGHTS[1]).read_text(encoding="utf-8"))["weight_map"]
                                .values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return [_Problem(f"{SAFE_WEIGHTS[1]} is damaged", fix)]
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            return [_Problem(f"weight shards missing: {', '.join(missing[:5])}", fix)]
        return _safetensors_problems(path, shards, fix)
    pickles = sorted(p.name for p in path.iterdir() if p.is_file() and p.name.endswith(PICKLE_SUFFIXES)
                     and not _TRAINER_STATE.match(p.name)) if path.is_dir() else []
    loadable = [name for name in PICKLE_WEIGHTS if (path / name).is_file()]
    if loadable and pickle_ok:
        return []
    if loadable:
        if module:  # a sentence-transformers module (2_Dense/): sentence-transformers re-saves it as safetensors
            root = path.parent
            convert = (f"from sentence_transformers import SentenceTransformer; SentenceTransformer('{root}')"
                       f".save('{root}')")
        else:
            cls = next(iter(config.get("architectures") or []), "AutoModel")
            convert = (f"from transformers import {cls}; {cls}.from_pretrained('{path}', use_safetensors=False)"
                       f".save_pretrained('{path}')")
        raise ModelError(f"{label} its weights are a pickle file ({path / loadable[0]}), which can run arbitrary code "
                         f"when loaded; textclf loads safetensors only. Fix: convert it once, if you trust it "
                         f"(python -c \"{convert}\" writes model.safetensors), or load it as it is with "
                         f"{_OPT_IN_PICKLE}")
    if pickles:
        raise ModelError(f"{label} no safetensors weights, only pickle files ({', '.join(pickles[:3])}) that textclf "
                         "does not load, even with allow_pickle (which accepts transformers' pytorch_model.bin). Fix: "
                         "load the model with the code that saved it and write it with save_pretrained "
                         "(model.safetensors), or train it again with textclf train")
    where = f" in {module}/" if module else ""
    return [_Problem(f"no weights{where} ({SAFE_WEIGHTS[0]}, or a sharded {SAFE_WEIGHTS[1]})", fix)]


def _safetensors_problems(path: Path, names: list[str], fix: str) -> list[_Problem]:
    """Read each file's header (a few kB): a truncated or foreign file fails here, not halfway through loading."""
    from safetensors import safe_open

    for name in names:
        try:
            with safe_open(str(path / name), "pt"):
                pass
        except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError (and OSError)
            return [_Problem(f"{name} is damaged ({str(err).splitlines()[0]})", fix)]
    return []


def _transformer_dir(path: Path) -> Path | None:
    """The transformers model inside a sentence-transformers directory of the older layout (``0_Transformer/``
    holding config.json), from ``modules.json``; None when there is none."""
    modules = _json_or_empty(path / "modules.json") if path.is_dir() else None
    for module in modules if isinstance(modules, list) else []:
        if (isinstance(module, dict) and str(module.get("type", "")).endswith("Transformer") and module.get("path")
                and (path / module["path"] / "config.json").is_file()):
            return path / module["path"]
    return None


def _module_dirs(path: Path) -> list[Path]:
    """The sub-directories of the sentence-transformers modules that hold weights (``2_Dense/``, ...), from
    ``modules.json``; [] for a plain transformers directory."""
    modules = _json_or_empty(path / "modules.json")
    if not isinstance(modules, list):
        return []
    dirs = [path / m["path"] for m in modules if isinstance(m, dict) and m.get("path")]
    return [d for d in dirs if d.is_dir() and any(f.name.endswith((".safetensors", *PICKLE_SUFFIXES))
                                                   for f in d.iterdir())]


def _embedding_problems(path: Path, config: dict[str, Any]) -> list[_Problem]:
    """The method=head / setfit files: the head (shapes matching the labels) and the pooling modules.json names."""
    fix = "copy the directory again from where it was written, or train again"
    head = path / EMBEDDING_HEAD_FILE
    if not head.is_file():
        return [_Problem(f"no {EMBEDDING_HEAD_FILE} (the classifier head of method=head / setfit)", fix)]
    from safetensors import safe_open

    try:
        with safe_open(str(head), "pt") as tensors:
            shapes = {name: tensors.get_slice(name).get_shape() for name in tensors.keys()}  # noqa: SIM118 - not a dict
    except Exception as err:  # noqa: BLE001 - SafetensorError
        return [_Problem(f"{EMBEDDING_HEAD_FILE} is damaged ({str(err).splitlines()[0]})", fix)]
    problems = []
    num_labels = len(config.get("id2label") or {})
    weight, bias = shapes.get("weight"), shapes.get("bias")
    if weight is None or bias is None or len(weight) != 2 or list(bias) != [weight[0]]:
        problems.append(_Problem(f"{EMBEDDING_HEAD_FILE} holds {shapes}, not weight (num_labels, hidden_size) and "
                                 "bias (num_labels,)", fix))
    elif num_labels and weight[0] != num_labels:
        problems.append(_Problem(f"{EMBEDDING_HEAD_FILE} has {weight[0]} outputs but id2label {num_labels} labels",
                                 fix))
    lexical, features = shapes.get("lexical_weight"), shapes.get("lexical_feature_ids")
    if lexical is not None and (features is None or weight is None or list(lexical) != [weight[0], features[0]]
                                or shapes.get("lexical_idf") != features
                                or not {"lexical_vocab_size", "lexical_special_ids"} <= shapes.keys()):
        problems.append(_Problem(f"{EMBEDDING_HEAD_FILE}'s TF-IDF block does not fit together ({shapes})", fix))
    modules = _json_or_empty(path / "modules.json")
    if (path / "modules.json").is_file() and not isinstance(modules, list):
        problems.append(_Problem("modules.json is damaged", fix))
    for module in modules if isinstance(modules, list) else []:
        if (isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling")
                and not (path / module.get("path", "") / "config.json").is_file()):
            problems.append(_Problem(f"no {module.get('path', '')}/config.json (the pooling modules.json names)", fix))
    return problems
