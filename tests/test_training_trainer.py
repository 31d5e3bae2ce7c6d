"""The one Trainer builder: recipe -> TrainingArguments, layer-wise learning-rate decay groups."""

from __future__ import annotations

from textclf.config import load_recipe
from textclf.training.trainer import training_arguments


def test_training_arguments_follow_the_recipe(tmp_path):
    recipe = load_recipe("sst2", ["preset=reference", "warmup_ratio=0.1", "eval_strategy=steps", "eval_steps=7",
                                  "seed=3", "gradient_accumulation_steps=2"])
    args = training_arguments(recipe, tmp_path, "accuracy", bf16=False)
    assert args.output_dir == str(tmp_path / "checkpoints")
    assert (args.learning_rate, args.per_device_train_batch_size, args.weight_decay) == (2e-5, 16, 0.01)
    assert args.optim == "adamw_torch"
    assert args.train_sampling_strategy == "random"
    assert args.warmup_steps == 0.1
    assert args.gradient_accumulation_steps == 2
    assert args.eval_strategy == "steps" and args.save_strategy == "steps"
    assert args.eval_steps == 7 and args.save_steps == 7
    assert args.load_best_model_at_end and args.metric_for_best_model == "accuracy" and args.greater_is_better
    assert args.seed == args.data_seed == 3
    assert args.bf16 is False
    assert training_arguments(recipe, tmp_path, "loss", bf16=False).greater_is_better is False


def test_layerwise_groups_decay_the_learning_rate_from_head_to_embeddings(tiny_model_dir):
    from textclf.modeling import load_model
    from textclf.training.trainer import layerwise_parameter_groups

    model = load_model(str(tiny_model_dir), ["neg", "pos"], "single_label_classification", freeze_embeddings=True)
    groups = layerwise_parameter_groups(model, 1e-3, 0.5, weight_decay=0.01)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    # 2 encoder blocks: head 1e-3, block 1 5e-4, block 0 2.5e-4, embeddings 1.25e-4
    assert lr_of[id(params["classifier.weight"])] == lr_of[id(params["bert.pooler.dense.weight"])] == 1e-3
    assert lr_of[id(params["bert.encoder.layer.1.attention.self.query.weight"])] == 5e-4
    assert lr_of[id(params["bert.encoder.layer.0.output.dense.bias"])] == 2.5e-4
    assert lr_of[id(params["bert.embeddings.position_embeddings.weight"])] == 1.25e-4
    assert id(params["bert.embeddings.word_embeddings.weight"]) not in lr_of  # frozen: not optimised
    assert wd_of[id(params["classifier.weight"])] == 0.01 and wd_of[id(params["classifier.bias"])] == 0.0
    assert wd_of[id(params["bert.encoder.layer.0.output.LayerNorm.weight"])] == 0.0
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sorted(map(id, trainable)) == sorted(lr_of)  # every trainable parameter exactly once
