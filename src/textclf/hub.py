"""The Hugging Face Hub: repository ids, the token check, and uploading a finished checkpoint.

Nothing here runs at import or touches the network until :func:`create_repo` / :func:`upload_model` are called
(``huggingface_hub`` is imported inside them), so offline runs never reach the Hub.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from textclf.errors import ConfigError

logger = logging.getLogger(__name__)

# A Hugging Face Hub repository id: ``name`` (legacy ids such as bert-base-uncased) or ``owner/name``; letters,
# digits, ``-``, ``_`` and ``.`` (huggingface_hub's repo-id rules, simplified).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def is_hub_id(model: str) -> bool:
    """Whether ``model`` reads as a Hub repository id (:data:`HUB_ID`) and is not a local path."""
    return bool(HUB_ID.match(model)) and not Path(model).exists()


def check_hub_model_id(value: str | None) -> None:
    """Raise ConfigError unless ``value`` is None, ``name`` or ``owner/name`` (letters, digits, ``-``, ``_``, ``.``)."""
    if value is not None and not HUB_ID.match(value):
        raise ConfigError(f"hub_model_id={value!r} is not a Hub repository id: use name or owner/name "
                          "(e.g. hub_model_id=me/sst2-minilm)")


def check_hub_token() -> str:
    """The Hugging Face token that ``push_to_hub`` will use.

    Raises:
        ConfigError: no token (``HF_TOKEN`` unset and no ``hf auth login``).
    """
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise ConfigError("push_to_hub=true needs a Hugging Face token: run `hf auth login` or set HF_TOKEN "
                          "(or set push_to_hub=false)")
    return token


def push_model(model_dir: str | Path, repo_id: str, token: str, prepare: Callable[[str], object] | None = None,
               private: bool | None = None) -> str:
    """Upload a checkpoint directory (weights, tokenizer, config, model card) to the Hugging Face Hub.

    Args:
        repo_id: ``name`` (in the token owner's namespace) or ``owner/name``; created if missing.
        token: a Hub token with write access (:func:`check_hub_token`).
        prepare: called with the repository's full id (``owner/name``) once it exists and before the upload, e.g.
            to rewrite the model card so that its usage example names the repository.
        private: visibility of a new repository (None: the Hub's default, public unless the organisation says
            otherwise, as the Trainer's own push_to_hub); an existing one keeps its setting.

    Returns:
        The URL of the repository.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if prepare is not None:
        prepare(repo.repo_id)
    api.upload_folder(repo_id=repo.repo_id, folder_path=str(model_dir), repo_type="model",
                      commit_message="textclf: upload model")
    logger.info("pushed %s to %s", model_dir, repo)
    return str(repo)
