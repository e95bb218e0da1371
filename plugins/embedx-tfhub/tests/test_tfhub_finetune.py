"""The Keras fine-tuning baselines, run as `embedx bench compare` runs them, on real SMS texts."""

from __future__ import annotations

import pytest

from embedx.plugin_api import load_dataset, split_dataset
from embedx_tfhub.finetune import KerasHubFineTuner


@pytest.fixture(scope="module")
def sms():
    parts = split_dataset(load_dataset("sms-spam", fetch=True), seed=0, samples_per_class=40)
    return parts["train"], parts["validation"], parts["test"]


@pytest.mark.parametrize("kind", ["text", "elmo"])
def test_keras_finetuner_trains_with_curves_and_predicts(modules, sms, kind):
    train, validation, test = sms
    tuner = KerasHubFineTuner(modules[kind], kind=kind, epochs=3, patience=5)
    result = tuner.run((train.texts, train.label_ids), (validation.texts, validation.label_ids), test.texts, 2, 0)
    assert result.test_pred.shape == (len(test),) and set(result.test_pred.tolist()) <= {0, 1}
    assert len(result.curves["val_loss"]) == 3 == result.extra["epochs_run"]
    assert result.curves["train_loss"][-1] < result.curves["train_loss"][0]


def test_offline_url_fails_at_once(sms):
    from embedx.plugin_api import EmbedderUnavailable

    train, validation, test = sms
    with pytest.raises(EmbedderUnavailable, match="not in the TF Hub cache"):
        KerasHubFineTuner("https://tfhub.dev/google/nnlm-en-dim50/2").run(
            (train.texts, train.label_ids), (validation.texts, validation.label_ids), test.texts, 2, 0)
