"""The Hugging Face Hub: repository ids, the token check, and push_to_hub's upload with its model card."""

from __future__ import annotations

import os

import pytest
from conftest import front_matter

from textclf.config import load_recipe
from textclf.errors import ConfigError
from textclf.training import train


def test_push_to_hub_without_a_token_is_a_config_error(fast_recipe, sentiment_files, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match="push_to_hub=true needs a Hugging Face token: run `hf auth login` or "
                                          "set HF_TOKEN"):
        train(fast_recipe(train_file, "push_to_hub=true"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_hub_model_id_is_a_config_error():
    with pytest.raises(ConfigError, match="hub_model_id='a/b/c' is not a Hub repository id"):
        load_recipe("sst2", ["hub_model_id=a/b/c"])


def test_push_to_hub_uploads_the_model_with_its_card(fast_recipe, sentiment_files, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    class RepoUrl(str):
        repo_id = "me/tiny-sentiment"

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs["exist_ok"]))
            return RepoUrl("https://huggingface.co/me/tiny-sentiment")

        def upload_folder(self, repo_id, folder_path, **kwargs):
            with open(os.path.join(folder_path, "README.md"), encoding="utf-8") as fh:
                readme = fh.read()
            calls.append(("upload_folder", repo_id, folder_path, sorted(os.listdir(folder_path)), readme))

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    train_file, validation_file = sentiment_files
    out = tmp_path / "tiny-sentiment"
    train(fast_recipe(train_file, f"validation_file={validation_file}", "push_to_hub=true", "report_to=none"), out)
    assert calls[0] == ("token", "hf_test")
    assert calls[1] == ("create_repo", "tiny-sentiment", True)  # default: the run directory's name
    kind, repo_id, folder, files, readme = calls[2]
    assert (kind, repo_id, folder) == ("upload_folder", "me/tiny-sentiment", str(out / "model"))
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert 'model="me/tiny-sentiment"' in readme and front_matter(readme)["model-index"][0]["name"] == "tiny-sentiment"


@pytest.mark.parametrize("model, expected", [("distilbert-base-uncased", True), ("me/sst2-minilm", True),
                                             ("a/b/c", False), ("-bad", False), ("runs/x/model", False)])
def test_is_hub_id(model, expected, tmp_path, monkeypatch):
    from textclf.hub import is_hub_id

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x" / "model").mkdir(parents=True)  # an existing local path is never a Hub id
    assert is_hub_id(model) is expected
