"""word-vectors through real gensim files and the real pipeline: formats, pooling, OOV, tokens, cache keys."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.models.fasttext import load_facebook_vectors
from gensim.test.utils import datapath

from embedx.plugin_api import OptionError, RegistryError

GLOVE = datapath("test_glove.txt")
W2V_BIN = datapath("euclidean_vectors.bin")
FT_BIN = datapath("lee_fasttext.bin")
FT_VEC = datapath("lee_fasttext.vec")

# Texts made of known words (and one unknown word) of test_glove.txt.
GLOVE_TEXTS = ["the people said that", "he was first and she was not", "new year for people", "the zzyzx of one"]


@pytest.fixture(scope="module")
def glove_kv():
    return KeyedVectors.load_word2vec_format(GLOVE, no_header=True)


@pytest.fixture(scope="module")
def fasttext_kv():
    return load_facebook_vectors(FT_BIN)


def expected_pool(kv, text, method, oov="skip"):
    words = text.split()
    rows = [kv[w] if w in kv.key_to_index else np.zeros(kv.vector_size, np.float32) for w in words
            if oov == "zero" or w in kv.key_to_index]
    if not rows:
        return np.zeros(kv.vector_size, np.float32)
    rows = np.stack(rows)
    return {"mean": rows.mean(0), "sum": rows.sum(0), "sqrtn": rows.sum(0) / np.sqrt(len(rows)),
            "max": rows.max(0)}[method]


def test_registering_does_not_import_gensim():
    code = "import sys, embedx_gensim.plugin; assert 'gensim' not in sys.modules, 'gensim imported at registration'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_both_ids_are_registered_by_the_gensim_entry_point(registry):
    assert registry.embedders["word-vectors"].plugin == "gensim"
    preset = registry.embedders["glove-6b-50d"]
    assert preset.plugin == "gensim" and preset.defaults["model"] == "kumo:glove-6b-50d"


@pytest.mark.parametrize("pooling", ["mean", "sum", "sqrtn", "max"])
def test_pooling_matches_numpy_on_gensim_vectors(extract, glove_kv, pooling):
    report, stored = extract(GLOVE_TEXTS, model=GLOVE, pooling=pooling)
    assert report.computed == len(GLOVE_TEXTS)
    got = stored.doc(GLOVE_TEXTS)
    want = np.stack([expected_pool(glove_kv, t, pooling) for t in GLOVE_TEXTS])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_oov_zero_counts_unknown_words_as_zero_vectors(extract, glove_kv):
    _, stored = extract(GLOVE_TEXTS, model=GLOVE, oov="zero")
    want = np.stack([expected_pool(glove_kv, t, "mean", oov="zero") for t in GLOVE_TEXTS])
    np.testing.assert_allclose(stored.doc(GLOVE_TEXTS), want, rtol=1e-5, atol=1e-6)
    # "the zzyzx of one": four tokens, three known -> mean over four rows is 3/4 of the skip mean
    np.testing.assert_allclose(want[3], expected_pool(glove_kv, GLOVE_TEXTS[3], "mean") * 0.75, rtol=1e-5, atol=1e-6)


def test_word2vec_binary_is_detected_and_averaged(extract):
    kv = KeyedVectors.load_word2vec_format(W2V_BIN, binary=True)
    texts = ["the government said", "australian people"]
    report, stored = extract(texts, model=W2V_BIN)
    assert report.computed == 2
    np.testing.assert_allclose(stored.doc(texts), np.stack([expected_pool(kv, t, "mean") for t in texts]),
                               rtol=1e-5, atol=1e-6)


def test_fasttext_vec_has_a_header_and_lowercase_changes_lookups(extract):
    kv = KeyedVectors.load_word2vec_format(FT_VEC)
    texts = ["The people", "South Australian"]
    _, cased = extract(texts, model=FT_VEC, outputs=("doc", "tokens"))
    np.testing.assert_allclose(cased.doc(texts)[0], (kv["The"] + kv["people"]) / 2, rtol=1e-5, atol=1e-6)
    _, lowered = extract(texts, model=FT_VEC, lowercase=True, outputs=("doc", "tokens"))
    np.testing.assert_allclose(lowered.doc(texts)[0], (kv["the"] + kv["people"]) / 2, rtol=1e-5, atol=1e-6)
    assert lowered.tokens(texts)[1][0] == ["south", "australian"]


def test_fasttext_subwords_give_unseen_words_gensims_vector(extract, fasttext_kv):
    word = "australianisation"
    assert word not in fasttext_kv.key_to_index
    texts = [f"the {word}"]
    _, skip = extract(texts, model=FT_BIN, outputs=("doc", "tokens"))
    _, sub = extract(texts, model=FT_BIN, oov="subword", outputs=("doc", "tokens"))
    tokens, vectors = sub.tokens(texts)[0]
    assert tokens == ["the", word]
    assert np.abs(vectors[1]).sum() > 0
    np.testing.assert_allclose(vectors[1], fasttext_kv[word], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vectors[0], fasttext_kv["the"], rtol=1e-6)
    np.testing.assert_allclose(sub.doc(texts)[0], (fasttext_kv["the"] + fasttext_kv[word]) / 2, rtol=1e-5, atol=1e-6)
    # without subwords the unseen word is a zero row and is left out of the mean
    skip_tokens, skip_vectors = skip.tokens(texts)[0]
    assert skip_tokens == ["the", word] and not skip_vectors[1].any()
    np.testing.assert_allclose(skip.doc(texts)[0], fasttext_kv["the"], rtol=1e-6)


def test_subword_needs_ngram_vectors(extract):
    with pytest.raises(OptionError, match="subword"):
        extract(["the"], model=FT_VEC, oov="subword")


def test_token_output_keeps_every_token_and_punctuation_option(extract, glove_kv):
    texts = ["The people, said: zzyzx!", ""]
    _, stored = extract(texts, model=GLOVE, lowercase=True, outputs=("doc", "tokens"))
    (tokens, vectors), (empty_tokens, empty_vectors) = stored.tokens(texts)
    assert tokens == ["the", "people", "said", "zzyzx"]
    assert vectors.shape == (4, 50) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[:3], np.stack([glove_kv[w] for w in tokens[:3]]))
    assert not vectors[3].any()
    assert empty_tokens == [] and empty_vectors.shape == (0, 50)
    assert not stored.doc(texts)[1].any()  # empty text: zero document vector
    _, kept = extract(texts[:1], model=GLOVE, lowercase=True, strip_punctuation=False, outputs=("tokens",))
    assert kept.tokens(texts[:1])[0][0] == ["the", "people", ",", "said", ":", "zzyzx", "!"]


def test_text_without_known_words_gets_zero_vector(extract):
    texts = ["zzyzx qwxz", "the"]
    _, stored = extract(texts, model=GLOVE, pooling="max", normalize=True)
    doc = stored.doc(texts)
    assert not doc[0].any()
    assert np.isclose(np.linalg.norm(doc[1]), 1.0)


def test_max_length_truncates_and_reports(extract, glove_kv):
    texts = ["the people said that he was", "the people", "one two three four five six seven"]
    report, stored = extract(texts, model=GLOVE, max_length=3, outputs=("doc", "tokens"))
    assert report.truncated_computed == 2
    np.testing.assert_array_equal(stored.truncated(texts), [3, 0, 4])
    assert stored.tokens(texts)[0][0] == ["the", "people", "said"]
    np.testing.assert_allclose(stored.doc(texts)[0], expected_pool(glove_kv, "the people said", "mean"), rtol=1e-5)


def test_cache_key_follows_options_and_second_run_computes_nothing(extract, tmp_path):
    store = tmp_path / "cache.h5"
    mean, _ = extract(GLOVE_TEXTS, store=store, model=GLOVE, pooling="mean")
    again, _ = extract(GLOVE_TEXTS, store=store, model=GLOVE, pooling="mean")
    summed, _ = extract(GLOVE_TEXTS, store=store, model=GLOVE, pooling="sum")
    assert mean.computed == len(GLOVE_TEXTS) and again.computed == 0 and again.cached == len(GLOVE_TEXTS)
    assert again.set_name == mean.set_name
    assert summed.set_name != mean.set_name and summed.computed == len(GLOVE_TEXTS)


def test_missing_file_and_unknown_suffix_are_clear_errors(extract, tmp_path):
    with pytest.raises(RegistryError, match="nowhere.vec does not exist"):
        extract(["the"], model=str(tmp_path / "nowhere.vec"))
    odd = tmp_path / "vectors.dat"
    odd.write_text("the 0.1 0.2\n")
    with pytest.raises(OptionError, match="format="):
        extract(["the"], model=str(odd))
    _, stored = extract(["the"], model=str(odd), format="glove")
    np.testing.assert_allclose(stored.doc(["the"])[0], [0.1, 0.2], rtol=1e-6)


def test_tokenizer_follows_the_treebank_conventions_of_the_vocabularies():
    from embedx_gensim.tokenizer import Tokenizer

    text = "Don't stop: it's 3.14 state-of-the-art\u2019s best... (really)"
    assert Tokenizer(lowercase=True)(text) == ["do", "n't", "stop", "it", "'s", "3.14", "state-of-the-art", "'s",
                                               "best", "really"]
    assert Tokenizer(strip_punctuation=False)(text)[:4] == ["Do", "n't", "stop", ":"]
    assert Tokenizer(strip_punctuation=False)("best... (really)") == ["best", "...", "(", "really", ")"]


def test_the_old_option_name_path_still_works_with_a_warning(extract):
    with pytest.warns(FutureWarning, match="'path' is now called 'model'"):
        report, old = extract(GLOVE_TEXTS, path=GLOVE)
    again, new = extract(GLOVE_TEXTS, model=GLOVE)
    assert again.computed == 0 and again.config_hash == report.config_hash  # same cache: path was never keyed
    np.testing.assert_array_equal(old.doc(GLOVE_TEXTS), new.doc(GLOVE_TEXTS))
