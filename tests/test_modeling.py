"""modeling: label maps, frozen parts, dropout settings and the per-batch attention kernel."""

from __future__ import annotations

import pytest
import torch

from textclf.config import load_recipe
from textclf.errors import ModelError
from textclf.modeling import label_maps, load_model, use_length_aware_attention
from textclf.tasks import REGRESSION, SINGLE_LABEL


def test_label_maps_follow_one_label_list() -> None:
    assert label_maps(["neg", "pos"], SINGLE_LABEL) == ({0: "neg", 1: "pos"}, {"neg": 0, "pos": 1})
    assert label_maps([], REGRESSION) == ({0: "score"}, {"score": 0})


def test_freeze_embeddings_freezes_only_the_word_table(tiny_model_dir) -> None:
    model = load_model(str(tiny_model_dir), ["a", "b"], SINGLE_LABEL, freeze_embeddings=True)
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.base_model.embeddings.position_embeddings.weight.requires_grad
    assert model.classifier.weight.requires_grad
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen == model.get_input_embeddings().weight.numel()


def test_dropout_settings_reach_the_config_and_the_modules(tiny_model_dir) -> None:
    model = load_model(str(tiny_model_dir), ["a", "b"], SINGLE_LABEL, attention_dropout=0.0, hidden_dropout=0.25)
    assert model.config.attention_probs_dropout_prob == 0.0
    assert model.config.hidden_dropout_prob == 0.25
    assert model.base_model.embeddings.dropout.p == 0.25
    default = load_model(str(tiny_model_dir), ["a", "b"], SINGLE_LABEL)
    assert default.config.attention_probs_dropout_prob == pytest.approx(0.1)  # the model's own


def test_distilbert_dropout_names(tmp_path, bundled_tokenizer) -> None:
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(vocab_size=bundled_tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    DistilBertModel(config).save_pretrained(tmp_path)
    bundled_tokenizer.save_pretrained(tmp_path)
    model = load_model(str(tmp_path), ["a", "b"], SINGLE_LABEL, attention_dropout=0.0, hidden_dropout=0.0,
                       freeze_embeddings=True)
    assert model.config.attention_dropout == 0.0 and model.config.dropout == 0.0
    assert not model.get_input_embeddings().weight.requires_grad


def test_missing_model_directory_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(str(tmp_path / "nope"), ["a", "b"], SINGLE_LABEL)


def test_length_aware_attention_switches_kernels_without_changing_results(tiny_model_dir) -> None:
    torch.manual_seed(0)
    model = load_model(str(tiny_model_dir), ["a", "b"], SINGLE_LABEL, attention_dropout=0.0).eval()
    short = torch.randint(1000, 2000, (2, 6))
    long = torch.randint(1000, 2000, (2, 12))
    with torch.no_grad():
        reference = {n: model(input_ids=ids).logits for n, ids in (("short", short), ("long", long))}
        handle = use_length_aware_attention(model, min_sdpa_length=10)
        short_logits = model(input_ids=short).logits
        assert model.config._attn_implementation == "eager"
        long_logits = model(input_ids=long).logits
        assert model.config._attn_implementation == "sdpa"
        handle.remove()
        model(input_ids=short)
        assert model.config._attn_implementation == "sdpa"  # the hook is gone
    torch.testing.assert_close(short_logits, reference["short"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(long_logits, reference["long"], atol=1e-5, rtol=1e-4)


def test_fast_and_reference_presets_differ_only_where_documented() -> None:
    fast = load_recipe("sst2")
    reference = load_recipe("sst2", ["preset=reference"])
    assert (fast.freeze_embeddings, fast.attention_dropout, fast.hidden_dropout, fast.attn_implementation) == \
        (True, 0.0, 0.0, "auto")
    assert (reference.freeze_embeddings, reference.attention_dropout, reference.hidden_dropout,
            reference.attn_implementation) == (False, None, None, "sdpa")
    assert (reference.learning_rate, reference.per_device_train_batch_size, reference.bf16) == (2e-5, 16, "false")
    assert reference.max_seq_length == fast.max_seq_length and reference.num_train_epochs == fast.num_train_epochs
