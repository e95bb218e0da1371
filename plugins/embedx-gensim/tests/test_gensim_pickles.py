"""Pickled vector files: .kv loads through the restricted unpickler, anything else needs trust_pickle."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from gensim.models import KeyedVectors, Word2Vec
from gensim.models.fasttext import load_facebook_vectors
from gensim.test.utils import common_texts, datapath

from embedx.plugin_api import EmbedderUnavailable, OptionError


class Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def small_kv():
    return KeyedVectors.load_word2vec_format(datapath("euclidean_vectors.bin"), binary=True)


def test_keyedvectors_with_side_arrays_load_safely(extract, small_kv, tmp_path):
    path = str(tmp_path / "vectors.kv")
    small_kv.save(path, separately=["vectors"])  # large arrays go to <path>.vectors.npy
    assert os.path.exists(path + ".vectors.npy")
    texts = ["the government", "australia"]
    report, stored = extract(texts, model=path)  # no trust_pickle needed
    want = np.stack([(small_kv["the"] + small_kv["government"]) / 2, small_kv["australia"]])
    np.testing.assert_allclose(stored.doc(texts), want, rtol=1e-5, atol=1e-6)
    assert report.computed == 2
    # the side array is part of the identity: new content there means a new feature set
    np.save(path + ".vectors.npy", small_kv.vectors * 2)
    changed, _ = extract(texts, model=path)
    assert changed.set_name != report.set_name and changed.computed == 2


def test_fasttext_keyedvectors_keep_subwords_through_the_safe_path(extract, tmp_path):
    ft = load_facebook_vectors(datapath("lee_fasttext.bin"))
    path = str(tmp_path / "ft.kv")
    ft.save(path)
    word = "australianisation"
    _, stored = extract([word], model=path, oov="subword")
    np.testing.assert_allclose(stored.doc([word])[0], ft[word], rtol=1e-5, atol=1e-6)


def test_pickle_that_runs_code_is_refused_without_running_it(extract, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.kv"
    path.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(EmbedderUnavailable, match=r"posix\.system.*trust_pickle=true"):
        extract(["the"], model=str(path))
    assert not marker.exists()


def test_code_hidden_inside_keyedvectors_is_refused(extract, small_kv, tmp_path):
    marker = tmp_path / "pwned"
    small_kv.payload = Evil(marker)
    path = str(tmp_path / "hidden.kv")
    small_kv.save(path)
    with pytest.raises(EmbedderUnavailable, match=r"refusing to load .*hidden\.kv.*posix\.system"):
        extract(["the"], model=path)
    assert not marker.exists()


def test_a_pickle_that_is_not_keyedvectors_is_refused(extract, tmp_path):
    path = tmp_path / "plain.kv"
    path.write_bytes(pickle.dumps({"the": [0.1, 0.2]}))
    with pytest.raises(EmbedderUnavailable, match="holds a dict"):
        extract(["the"], model=str(path))


def test_full_gensim_model_needs_trust(extract, tmp_path):
    model = Word2Vec(common_texts, vector_size=8, min_count=1, epochs=1, seed=1, workers=1)
    path = str(tmp_path / "w2v.model")
    model.save(path)
    with pytest.raises(OptionError, match=r"w2v\.model.*trust_pickle=true"):
        extract(["computer"], model=path)
    with pytest.raises(EmbedderUnavailable, match="gensim.models.word2vec.Word2Vec"):
        extract(["computer"], model=path, format="keyedvectors")  # the safe loader refuses a model too
    _, stored = extract(["computer human"], model=path, trust_pickle=True)
    want = (model.wv["computer"] + model.wv["human"]) / 2
    np.testing.assert_allclose(stored.doc(["computer human"])[0], want, rtol=1e-5, atol=1e-6)
