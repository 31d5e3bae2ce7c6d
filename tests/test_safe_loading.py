"""Safe loading (textclf.checkpoints): safetensors weights only unless pickle is allowed, no custom code unless trusted,
and a partial or foreign directory refused before loading, with one error that names it and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from textclf.checkpoints import (
    ALLOW_PICKLE_ENV,
    EMBEDDING,
    MANIFEST,
    ONNX,
    TORCH,
    TRUST_REMOTE_CODE_ENV,
    check_model_dir,
    validate_checkpoint,
)
from textclf.errors import ModelError
from textclf.inference import Predictor
from textclf.modeling import load_model, load_sentence_model, load_tokenizer, save_embedding_classifier
from textclf.tasks import SINGLE_LABEL

LABELS = ["neg", "neu", "pos"]  # the classes of the classifier_dir fixture
TEXTS = ["a good and moving film", "a chore to sit through", "fine"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(autouse=True)
def no_opt_in(monkeypatch):
    """The opt-in variables are unset unless a test sets them."""
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    monkeypatch.delenv(TRUST_REMOTE_CODE_ENV, raising=False)


@pytest.fixture
def checkpoint(classifier_dir, tmp_path) -> Path:
    """A copy of the tiny 3-class classifier that a test may damage."""
    return Path(shutil.copytree(classifier_dir, tmp_path / "ckpt"))


def pickle_only(path: Path) -> Path:
    """Turn a checkpoint's safetensors weights into the pickle ``pytorch_model.bin`` (transformers' old format)."""
    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    return path


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def refused(call, *needles: str) -> str:
    """Run ``call``; it must raise ModelError whose message holds every needle. Returns the message."""
    with pytest.raises(ModelError) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)
    assert "\n" not in message  # one line: the CLI prints it as it is
    return message


# Complete checkpoints of every kind pass.

def test_complete_checkpoints_of_every_kind_pass(classifier_dir, embedding_dir, tmp_path):
    assert validate_checkpoint(classifier_dir) == TORCH
    assert validate_checkpoint(embedding_dir) == EMBEDDING
    export = Path(shutil.copytree(classifier_dir, tmp_path / "export"))
    (export / "model.safetensors").unlink()
    (export / "model.onnx").write_bytes(b"\x08\x07")  # only its presence is checked here; ONNX Runtime reads it
    assert validate_checkpoint(export) == ONNX


def test_a_complete_trainer_checkpoint_loads(classifier_dir, tmp_path):
    step = trainer_checkpoint(classifier_dir, tmp_path / "run" / "checkpoints" / "checkpoint-3")
    assert validate_checkpoint(step) == TORCH  # the optimizer/scheduler/RNG pickles are resume state, not weights
    assert Predictor.from_pretrained(step).predict(TEXTS) == Predictor.from_pretrained(classifier_dir).predict(TEXTS)


def test_a_trainer_checkpoint_cut_short_is_refused(classifier_dir, tmp_path):
    step = trainer_checkpoint(classifier_dir, tmp_path / "checkpoint-3")
    (step / "optimizer.pt").write_bytes(b"")  # the run was killed while the Trainer wrote it
    refused(lambda: validate_checkpoint(step), str(step), "optimizer.pt", MANIFEST, "Fix: give an earlier checkpoint")


def trainer_checkpoint(source: Path, step: Path) -> Path:
    """A Trainer checkpoint-N: the model files, resume-state pickles and a manifest of every file's size."""
    shutil.copytree(source, step)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        torch.save({"state": name}, step / name)
    (step / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    files = {p.name: p.stat().st_size for p in step.iterdir()}
    (step / MANIFEST).write_text(json.dumps({"global_step": 3, "files": files}))
    return step


# Partial directories: one error naming the directory, what is missing and the fix.

def test_a_checkpoint_without_tokenizer(checkpoint):
    for name in TOKENIZER_FILES:
        (checkpoint / name).unlink(missing_ok=True)
    refused(lambda: Predictor.from_pretrained(checkpoint), str(checkpoint), "no tokenizer",
            "Fix: save the tokenizer", f".save_pretrained('{checkpoint}')")


def test_a_checkpoint_without_weights(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    refused(lambda: Predictor.from_pretrained(checkpoint), str(checkpoint), "no weights (model.safetensors",
            "Fix: copy the directory again")


def test_a_checkpoint_with_truncated_weights(checkpoint):
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    refused(lambda: Predictor.from_pretrained(checkpoint), str(checkpoint), "model.safetensors is damaged", "Fix:")


def test_a_sharded_checkpoint_with_a_missing_shard(checkpoint):
    (checkpoint / "model.safetensors").rename(checkpoint / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (checkpoint / "model.safetensors.index.json").write_text(json.dumps(index))
    refused(lambda: validate_checkpoint(checkpoint), str(checkpoint), "model-00002-of-00002.safetensors", "Fix:")


def test_a_checkpoint_whose_config_is_not_json(checkpoint):
    (checkpoint / "config.json").write_text('{"model_type": "bert",')
    refused(lambda: Predictor.from_pretrained(checkpoint), str(checkpoint), "config.json is not valid JSON",
            "Fix: copy the directory again")


@pytest.mark.parametrize(("changes", "needle"), [
    ({"label2id": {"neg": 0, "pos": 2}}, "label2id"),
    ({"id2label": {"0": "neg", "2": "neu", "3": "pos"}, "label2id": {"neg": 0, "neu": 2, "pos": 3}}, "not 0..2"),
    ({"num_labels": 2}, "num_labels=2 but id2label has 3"),
    ({"id2label": {"0": "neg", "1": "neg", "2": "pos"}}, "same name"),
    ({"id2label": None, "label2id": None}, "no id2label"),
    ({"problem_type": "ranking"}, "problem_type='ranking'"),
])
def test_label_maps_that_disagree(checkpoint, changes, needle):
    edit_json(checkpoint / "config.json", **changes)
    refused(lambda: Predictor.from_pretrained(checkpoint), str(checkpoint), needle, "Fix:")


def test_an_embedding_checkpoint_without_its_head(embedding_dir, tmp_path):
    partial = Path(shutil.copytree(embedding_dir, tmp_path / "partial"))
    (partial / "head.safetensors").unlink()
    refused(lambda: Predictor.from_pretrained(partial), str(partial), "no head.safetensors", "Fix:")


def test_an_embedding_head_that_does_not_match_the_labels(embedding_dir, tmp_path):
    wrong = Path(shutil.copytree(embedding_dir, tmp_path / "wrong"))
    save_file({"weight": torch.zeros(3, 32), "bias": torch.zeros(3)}, str(wrong / "head.safetensors"))
    refused(lambda: Predictor.from_pretrained(wrong), str(wrong), "3 outputs but id2label 2 labels")


def test_several_problems_in_one_error(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "tokenizer.json").unlink()
    (checkpoint / "tokenizer_config.json").unlink()
    message = refused(lambda: validate_checkpoint(checkpoint), "no tokenizer", "no weights")
    assert message.count(str(checkpoint)) >= 1 and message.count("Fix:") == 1


# Foreign directories.

def test_a_run_directory_asks_for_its_model_subdirectory(classifier_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(classifier_dir, run / "model")
    (run / "metrics.json").write_text("{}")
    refused(lambda: Predictor.from_pretrained(run), str(run), "give RUN/model", str(run / "model"))
    (run / "model" / "config.json").unlink()  # a search trial keeps no checkpoint
    refused(lambda: Predictor.from_pretrained(run), str(run), "run directory without its checkpoint")


def test_a_run_directory_as_the_model_to_train_asks_for_its_model_subdirectory(classifier_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(classifier_dir, run / "model")
    refused(lambda: load_model(str(run), LABELS, SINGLE_LABEL), "cannot load model", "give RUN/model",
            str(run / "model"))


def test_a_checkpoints_folder_asks_for_one_checkpoint(classifier_dir, tmp_path):
    for step in (2, 10):
        shutil.copytree(classifier_dir, tmp_path / "checkpoints" / f"checkpoint-{step}")
    refused(lambda: Predictor.from_pretrained(tmp_path / "checkpoints"), str(tmp_path / "checkpoints"),
            f"newest: {tmp_path / 'checkpoints' / 'checkpoint-10'}")


def test_empty_missing_and_random_directories(tmp_path):
    (tmp_path / "empty").mkdir()
    refused(lambda: Predictor.from_pretrained(tmp_path / "empty"), "not a checkpoint directory", "it is empty",
            str(tmp_path / "empty"), "give the `model` directory")
    refused(lambda: Predictor.from_pretrained(tmp_path / "missing"), str(tmp_path / "missing"), "does not exist")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    (junk / "data.csv").write_text("a,b\n")
    refused(lambda: Predictor.from_pretrained(junk), str(junk), "it holds data.csv, notes.txt")
    (junk / "config.json").write_text('{"learning_rate": 0.1}')  # some other tool's config
    refused(lambda: Predictor.from_pretrained(junk), str(junk), "not a transformers model config")


def test_a_base_encoder_is_not_a_classifier(tiny_model_dir):
    refused(lambda: Predictor.from_pretrained(tiny_model_dir), str(tiny_model_dir), "BertModel",
            "without a classification head", f"textclf train DATA model={tiny_model_dir}")


# Pickle weights: refused, then accepted with the opt-in.

def test_pickle_weights_are_refused_then_accepted_with_the_opt_in(checkpoint, classifier_dir, monkeypatch):
    pickle_only(checkpoint)
    refused(lambda: Predictor.from_pretrained(checkpoint), str(checkpoint / "pytorch_model.bin"),
            "use_safetensors=False).save_pretrained", "allow_pickle=True", ALLOW_PICKLE_ENV)
    expected = Predictor.from_pretrained(classifier_dir).logits(TEXTS)
    np.testing.assert_allclose(Predictor.from_pretrained(checkpoint, allow_pickle=True).logits(TEXTS), expected,
                               atol=1e-6)
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    np.testing.assert_allclose(Predictor.from_pretrained(checkpoint).logits(TEXTS), expected, atol=1e-6)


def test_pickle_files_transformers_does_not_load_are_refused_even_when_allowed(checkpoint):
    torch.save(load_file(checkpoint / "model.safetensors"), checkpoint / "model.pt")
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "model_head.pkl").write_bytes(b"\x80\x04N.")  # a SetFit head (joblib)
    refused(lambda: Predictor.from_pretrained(checkpoint, allow_pickle=True), str(checkpoint), "model.pt",
            "model_head.pkl", "save_pretrained")


def test_a_pickle_base_model_for_training_is_refused_then_accepted(tiny_model_dir, tmp_path, monkeypatch):
    base = pickle_only(Path(shutil.copytree(tiny_model_dir, tmp_path / "base")))
    refused(lambda: load_model(str(base), ["a", "b"], SINGLE_LABEL), "cannot load model",
            str(base / "pytorch_model.bin"), "BertModel.from_pretrained", ALLOW_PICKLE_ENV)
    refused(lambda: load_sentence_model(str(base)), str(base / "pytorch_model.bin"))
    assert load_model(str(base), ["a", "b"], SINGLE_LABEL, allow_pickle=True).config.num_labels == 2
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    assert load_model(str(base), ["a", "b"], SINGLE_LABEL).config.num_labels == 2


def test_a_pickle_sentence_transformers_module_is_refused(tiny_model_dir, tmp_path):
    base = Path(shutil.copytree(tiny_model_dir, tmp_path / "st"))
    (base / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "sentence_transformers.models.Dense"}]))
    (base / "1_Dense").mkdir()
    torch.save({"linear.weight": torch.zeros(4, 32)}, base / "1_Dense" / "pytorch_model.bin")
    refused(lambda: check_model_dir(base), str(base / "1_Dense" / "pytorch_model.bin"), "SentenceTransformer(")


def test_a_hub_model_with_only_pickle_weights(checkpoint, tmp_path, monkeypatch):
    fake_hub_cache(monkeypatch, tmp_path / "hub", "acme/old-bert", pickle_only(checkpoint))
    refused(lambda: load_model("acme/old-bert", LABELS, SINGLE_LABEL), "cannot load model 'acme/old-bert'",
            "no safetensors weights on the Hugging Face Hub", ALLOW_PICKLE_ENV)
    assert load_model("acme/old-bert", LABELS, SINGLE_LABEL, allow_pickle=True).config.num_labels == 3


def fake_hub_cache(monkeypatch, cache: Path, repo: str, files: Path) -> None:
    """Serve ``files`` as the Hub repository ``repo`` from a private offline cache (the Hub cache layout)."""
    import huggingface_hub.constants

    root = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(files, root / "snapshots" / commit)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))


# Custom code (auto_map): refused unless trusted; never trusted by default.

AUTO_MAP = {"AutoModelForSequenceClassification": "modeling_x.XModel"}


def test_custom_code_is_refused(checkpoint, tiny_model_dir, tmp_path):
    edit_json(checkpoint / "config.json", auto_map=AUTO_MAP)
    refused(lambda: Predictor.from_pretrained(checkpoint), str(checkpoint), "auto_map", "modeling_x.XModel",
            "trust_remote_code=True", TRUST_REMOTE_CODE_ENV)
    base = Path(shutil.copytree(tiny_model_dir, tmp_path / "base"))
    edit_json(base / "tokenizer_config.json", auto_map={"AutoTokenizer": ["tokenization_x.XTokenizer", None]})
    refused(lambda: load_tokenizer(str(base)), "cannot load model", "tokenizer_config.json", "tokenization_x")
    refused(lambda: load_model(str(base), ["a", "b"], SINGLE_LABEL), "tokenization_x", TRUST_REMOTE_CODE_ENV)


def test_a_custom_sentence_transformers_module_is_refused(embedding_dir, tmp_path):
    custom = Path(shutil.copytree(embedding_dir, tmp_path / "custom"))
    modules = json.loads((custom / "modules.json").read_text())
    modules[1]["type"] = "my_pooling.MyPooling"  # a module of the repository's own code
    (custom / "modules.json").write_text(json.dumps(modules))
    refused(lambda: Predictor.from_pretrained(custom), str(custom), "modules.json", "my_pooling.MyPooling",
            TRUST_REMOTE_CODE_ENV)
    refused(lambda: load_sentence_model(str(custom)), "cannot load model", "my_pooling.MyPooling")


def test_custom_code_on_the_hub_is_refused(checkpoint, tmp_path, monkeypatch):
    edit_json(checkpoint / "config.json", auto_map=AUTO_MAP)  # a known model_type: transformers would ignore it
    fake_hub_cache(monkeypatch, tmp_path / "hub", "acme/custom-bert", checkpoint)
    refused(lambda: load_model("acme/custom-bert", LABELS, SINGLE_LABEL), "cannot load model 'acme/custom-bert'",
            "auto_map", "https://huggingface.co/acme/custom-bert", TRUST_REMOTE_CODE_ENV)


def test_custom_code_is_passed_on_only_when_trusted(checkpoint, monkeypatch):
    edit_json(checkpoint / "config.json", auto_map=AUTO_MAP)
    calls = spy_from_pretrained(monkeypatch)
    Predictor.from_pretrained(checkpoint, trust_remote_code=True)
    monkeypatch.setenv(TRUST_REMOTE_CODE_ENV, "1")
    assert validate_checkpoint(checkpoint) == TORCH
    Predictor.from_pretrained(checkpoint)
    assert [c["trust_remote_code"] for c in calls] == [True, True]


def test_by_default_transformers_gets_safetensors_only_and_no_custom_code(classifier_dir, monkeypatch):
    calls = spy_from_pretrained(monkeypatch)
    Predictor.from_pretrained(classifier_dir)
    assert calls == [{"use_safetensors": True, "trust_remote_code": False}]


def spy_from_pretrained(monkeypatch) -> list[dict]:
    """Record the safety switches Predictor gives transformers' model loader, then load without custom code."""
    from transformers import AutoModelForSequenceClassification

    from textclf.inference import predictor

    calls: list[dict] = []

    class Spy:
        @staticmethod
        def from_pretrained(path, **kwargs):
            calls.append({k: kwargs[k] for k in ("use_safetensors", "trust_remote_code")})
            return AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True,
                                                                      trust_remote_code=False)

    monkeypatch.setattr(predictor, "AutoModelForSequenceClassification", Spy)
    return calls


@pytest.fixture(scope="module")
def embedding_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A method=head checkpoint (sentence-transformers encoder, mean pooling, head.safetensors), two labels."""
    path = tmp_path_factory.mktemp("embedding-head")
    body = load_sentence_model(str(tiny_model_dir))
    save_embedding_classifier(body, np.zeros((2, 32)), np.zeros(2), path, ["neg", "pos"], SINGLE_LABEL,
                              {"method": "head"})
    return path
