"""Keras builders: a few training steps change exactly the weights that should change."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = np.array(["the film was good", "bad boring movie", "great fun", "dull and too long"] * 4)
LABELS = np.array([1, 0, 1, 0] * 4, np.float32)


@pytest.fixture(scope="module")
def km():
    from embedx_tfhub import keras_models

    return keras_models


def train_and_diff(model, x, epochs=2):
    before = {w.name: w.numpy().copy() for w in model.weights}
    model.fit(x, LABELS, epochs=epochs, batch_size=8, verbose=0)
    return {w.name for w in model.weights if not np.array_equal(before[w.name], w.numpy())}


@pytest.mark.parametrize("trainable", [True, False])
def test_text_classifier_fine_tunes_the_embedding_only_when_trainable(km, modules, trainable):
    model = km.text_classifier(modules["text"], hidden=(16,), trainable=trainable)
    assert type(model).__module__.startswith("tf_keras")
    changed = train_and_diff(model, TEXTS)
    head = {"dense_0/kernel:0", "dense_0/bias:0", "output/kernel:0", "output/bias:0"}
    assert changed == (head | {"embeddings:0"} if trainable else head)
    assert {w.name for w in model.trainable_weights} == changed


def test_elmo_classifier_trains_the_four_mix_scalars_and_nothing_of_elmo(km, modules, hub, tf):
    model = km.elmo_classifier(modules["elmo"], hidden=(8,))
    mix = {"mix_weights:0", "mix_scaling:0"}
    trainable = {w.name for w in model.trainable_weights}
    assert mix <= trainable and sum(w.shape.num_elements() for w in model.get_layer("elmo").trainable_weights) == 4
    # before training, the mix is the module's own: the pooled output equals the mean of its `elmo` output
    pooled = model.get_layer("elmo")(tf.constant(TEXTS[:2]))
    module_out = hub.load(modules["elmo"]).signatures["default"](default=tf.constant(TEXTS[:2]))
    np.testing.assert_allclose(pooled.numpy(), module_out["default"].numpy(), atol=1e-5)
    changed = train_and_diff(model, TEXTS)
    assert changed == trainable  # every trainable weight moved...
    assert not any(name.split("/")[0] in ("char_cnn", "lstm_1", "lstm_2") for name in changed)  # ...none of ELMo's
    scalars = km.elmo_mix_scalars(model)
    assert scalars["weights"].shape == (3,) and abs(scalars["softmax"].sum() - 1) < 1e-6
    assert scalars["scaling"] != 1.0


@pytest.mark.parametrize("n_fine_tune_layers", [0, 2])
def test_bert_classifier_trains_only_the_top_layers(km, modules, n_fine_tune_layers):
    model = km.bert_classifier(modules["bert"], max_length=16, n_fine_tune_layers=n_fine_tune_layers,
                               learning_rate=1e-2)
    x = km.bert_inputs(modules["bert"], list(TEXTS), 16)
    assert x["input_word_ids"].shape == (16, 16) and x["input_mask"][0].sum() == 6  # [CLS] 4 words [SEP]
    changed = train_and_diff(model, x, epochs=1)
    blocks = {int(name.split("/")[1][len("layer_"):]) for name in changed if name.startswith("transformer/")}
    assert blocks == set(range(3 - n_fine_tune_layers, 3))  # the tiny encoder has blocks 0, 1, 2
    assert ("pooler_transform/kernel:0" in changed) == (n_fine_tune_layers > 0)
    assert not {n for n in changed if "embeddings" in n or n.startswith("embeddings/")}
    assert {"output/kernel:0", "output/bias:0"} <= changed
    assert changed == {w.name for w in model.trainable_weights}


def test_bert_classifier_mean_pooling(km, modules):
    model = km.bert_classifier(modules["bert"], max_length=16, n_fine_tune_layers=0, pooling="mean", hidden=(4,))
    x = km.bert_inputs(modules["bert"], list(TEXTS[:4]), 16)
    assert model.predict(x, verbose=0).shape == (4, 1)
