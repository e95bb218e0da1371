"""ELMo: both signatures, every output, per-layer storage, padding never returned, blank texts."""

from __future__ import annotations

import numpy as np
import pytest

from embedx_tfhub.elmo import Elmo

TEXTS = ["the cat is on the mat", "dogs are in the fog", "a", "one two three four five six seven eight nine"]
ALL = ["default", "layers_mean", "layers", "word_emb", "lstm_outputs1", "lstm_outputs2", "elmo"]


@pytest.fixture(scope="module")
def elmo_module(modules, hub):
    return hub.load(modules["elmo"])


def test_module_has_the_published_interface(elmo_module, tf):
    assert set(elmo_module.signatures) == {"default", "tokens"}
    default = elmo_module.signatures["default"]
    assert default.structured_input_signature[1] == {"default": tf.TensorSpec([None], tf.string, name="default")}
    tokens = elmo_module.signatures["tokens"]
    assert tokens.structured_input_signature[1] == {
        "tokens": tf.TensorSpec([None, None], tf.string, name="tokens"),
        "sequence_len": tf.TensorSpec([None], tf.int32, name="sequence_len")}
    out = default(default=tf.constant(["the cat is on the mat", "dogs are in the fog"]))
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in out.items()}
    assert shapes == {"word_emb": ((2, 6, 512), tf.float32), "lstm_outputs1": ((2, 6, 1024), tf.float32),
                      "lstm_outputs2": ((2, 6, 1024), tf.float32), "elmo": ((2, 6, 1024), tf.float32),
                      "default": ((2, 1024), tf.float32)}
    same = tokens(
        tokens=tf.constant([["the", "cat", "is", "on", "the", "mat"], ["dogs", "are", "in", "the", "fog", ""]]),
        sequence_len=tf.constant([6, 5]),
    )
    for name in out:
        np.testing.assert_allclose(out[name].numpy(), same[name].numpy(), atol=1e-6)
    # only the 4 mixing scalars are trainable, as in google/elmo/2 and /3
    assert sorted(v.shape.num_elements() for v in elmo_module.trainable_variables) == [1, 3]


@pytest.mark.parametrize("signature", ["default", "tokens"])
def test_every_output_and_per_layer_storage(extract, modules, signature):
    report, stored = extract(TEXTS, "elmo", outputs=ALL, model=modules["elmo"], signature=signature)
    assert report.computed == len(TEXTS)
    default = stored.doc(TEXTS, "default")
    layers_mean = stored.doc(TEXTS, "layers_mean")
    assert default.shape == (4, 1024) and layers_mean.shape == (4, 3, 1024)
    tokens = {name: stored.tokens(TEXTS, name) for name in ALL[2:]}
    for i, text in enumerate(TEXTS):
        words = text.split()
        layers = tokens["layers"][i][1]
        assert tokens["layers"][i][0] == words
        assert layers.shape == (len(words), 3, 1024)
        word = tokens["word_emb"][i][1]
        assert word.shape == (len(words), 512)
        # layer 0 is word_emb duplicated to 1024; layers 1 and 2 are the LSTM outputs
        np.testing.assert_array_equal(layers[:, 0, :512], word)
        np.testing.assert_array_equal(layers[:, 0, 512:], word)
        np.testing.assert_array_equal(layers[:, 1], tokens["lstm_outputs1"][i][1])
        np.testing.assert_array_equal(layers[:, 2], tokens["lstm_outputs2"][i][1])
        # the module's elmo output is its scalar mix (softmax(0) = 1/3 each, scale 1) of those layers
        np.testing.assert_allclose(tokens["elmo"][i][1], layers.mean(axis=1), atol=1e-5)
        np.testing.assert_allclose(layers_mean[i], layers.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(default[i], tokens["elmo"][i][1].mean(axis=0), atol=1e-5)


def test_signatures_agree_and_padding_is_never_returned(modules):
    embedders = {}
    for signature in ("default", "tokens"):
        embedders[signature] = Elmo(model=modules["elmo"], signature=signature)
        embedders[signature].requested_outputs = ("layers", "default")
        embedders[signature].load()
    batched = {name: e.embed_batch(TEXTS).outputs for name, e in embedders.items()}
    np.testing.assert_allclose(batched["default"]["default"], batched["tokens"]["default"], atol=1e-6)
    for i, text in enumerate(TEXTS):
        rows = batched["default"]["layers"].arrays[i]
        assert rows.shape == (len(text.split()), 3, 1024)
        np.testing.assert_allclose(rows, batched["tokens"]["layers"].arrays[i], atol=1e-6)
        # alone, a text has no padding at all: in a batch its rows are the same, and no more
        for embedder in embedders.values():
            alone = embedder.embed_batch([text]).outputs["layers"].arrays[0]
            np.testing.assert_allclose(alone, rows, atol=1e-5)


def test_blank_texts_get_zero_rows_and_zero_vectors(extract, modules):
    texts = ["", "the film", "   \t ", "good"]
    report, stored = extract(texts, "elmo", outputs=["default", "layers_mean", "layers", "elmo"], model=modules["elmo"])
    assert report.empty == 2
    default = stored.doc(texts, "default")
    assert not default[[0, 2]].any() and default[[1, 3]].any()
    assert not stored.doc(texts, "layers_mean")[[0, 2]].any()
    layers = stored.tokens(texts, "layers")
    assert layers[0][0] == [] and layers[0][1].shape == (0, 3, 1024)
    assert layers[1][0] == ["the", "film"] and layers[1][1].shape == (2, 3, 1024)
    assert stored.tokens(texts, "elmo")[2][1].shape == (0, 1024)


def test_a_batch_of_blank_texts_never_runs_the_module(modules):
    embedder = Elmo(model=modules["elmo"])
    embedder.requested_outputs = ("default", "layers")
    embedder.module = object()  # loaded: embed_batch must not load or call anything

    def fail(_):
        raise AssertionError("the module ran on blank texts")

    embedder._run = fail
    result = embedder.embed_batch(["", "  ", "\n"])
    assert not result.outputs["default"].any() and result.outputs["default"].shape == (3, 1024)
    assert [a.shape for a in result.outputs["layers"].arrays] == [(0, 3, 1024)] * 3


def test_whitespace_tokens_and_max_length(extract, modules):
    texts = ["one\ttwo  three\nfour five", "six"]
    report, stored = extract(texts, "elmo", outputs=["word_emb"], model=modules["elmo"], max_length=3)
    assert report.truncated_computed == 1
    assert stored.truncated(texts).tolist() == [2, 0]
    rows = stored.tokens(texts, "word_emb")
    assert rows[0][0] == ["one", "two", "three"] and rows[0][1].shape == (3, 512)
    assert rows[1][0] == ["six"]


def test_unknown_signature_is_refused(modules, registry):
    from embedx.plugin_api import OptionError

    with pytest.raises(OptionError, match="signature"):
        registry.create("elmo", {"model": modules["elmo"], "signature": "elmo"})
