"""flair-word: gensim vector files through flair's WordEmbeddings, with conversion where flair cannot read them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from embedx.plugin_api import EmbedderUnavailable, InputError, OptionError

GLOVE = datapath("test_glove.txt")  # GloVe text, no header, 50d
W2V_BIN = datapath("euclidean_vectors.bin")  # word2vec binary, 10d
FT_VEC = datapath("lee_fasttext.vec")  # word2vec text with a header, .vec suffix: flair cannot read it directly
FT_BIN = datapath("lee_fasttext.bin")


@pytest.fixture(scope="module")
def glove_kv():
    return KeyedVectors.load_word2vec_format(GLOVE, no_header=True)


def test_glove_txt_is_read_by_flair_directly(extract, glove_kv, tmp_path):
    texts = ["the people said", "The zzyzx"]
    report, stored = extract(texts, "flair-word", outputs=("doc", "tokens"), model=GLOVE, cache_dir=str(tmp_path / "c"))
    (tokens, vectors), (tokens2, vectors2) = stored.tokens(texts)
    assert tokens == ["the", "people", "said"] and vectors.shape == (3, 50)
    np.testing.assert_array_equal(vectors, np.stack([glove_kv[w] for w in tokens]))
    # flair falls back to the lowercased word; unknown words get its zero <unk> row, which counts in the mean
    np.testing.assert_array_equal(vectors2[0], glove_kv["the"])
    assert tokens2 == ["The", "zzyzx"] and not vectors2[1].any()
    np.testing.assert_allclose(stored.doc(texts), [vectors.mean(0), vectors2.mean(0)], rtol=1e-6)
    assert not (tmp_path / "c").exists()  # nothing converted


def test_word2vec_bin_and_converted_vec_give_gensims_vectors(extract, tmp_path):
    cache = tmp_path / "cache"
    kv = KeyedVectors.load_word2vec_format(W2V_BIN, binary=True)
    _, stored = extract(["the government"], "flair-word", model=W2V_BIN, cache_dir=str(cache))
    np.testing.assert_allclose(stored.doc(["the government"])[0], (kv["the"] + kv["government"]) / 2, rtol=1e-6)
    ft = KeyedVectors.load_word2vec_format(FT_VEC)
    first, stored = extract(["The people"], "flair-word", model=FT_VEC, cache_dir=str(cache))
    np.testing.assert_allclose(stored.doc(["The people"])[0], (ft["The"] + ft["people"]) / 2, rtol=1e-6)
    converted = list(cache.glob("*.w2v.bin"))
    assert len(converted) == 1  # keyed by the source's content hash, converted once
    copy = shutil.copy(FT_VEC, tmp_path / "moved.vec")
    again, _ = extract(["The people"], "flair-word", store=tmp_path / "other.h5", model=str(copy), cache_dir=str(cache))
    assert list(cache.glob("*.w2v.bin")) == converted and again.set_name == first.set_name


def test_pooling_equals_numpy_over_the_token_vectors(extract, tmp_path):
    texts = ["the people said that the government was australian", "australia", ""]
    for pooling, reduce in (("mean", np.mean), ("max", np.max), ("min", np.min)):
        _, stored = extract(texts, "flair-word", outputs=("doc", "tokens"), model=W2V_BIN, pooling=pooling,
                            store=tmp_path / f"{pooling}.h5")
        doc = stored.doc(texts)
        for row, (tokens, vectors) in enumerate(stored.tokens(texts)):
            want = reduce(vectors, axis=0) if len(tokens) else np.zeros(10, dtype=np.float32)
            np.testing.assert_allclose(doc[row], want, rtol=1e-6, atol=1e-7, err_msg=pooling)


def test_keyedvectors_pickle_needs_trust(extract, tmp_path):
    kv = KeyedVectors.load_word2vec_format(W2V_BIN, binary=True)
    path = str(tmp_path / "vectors.kv")
    kv.save(path)
    with pytest.raises(OptionError, match="trust_pickle=true"):
        extract(["the"], "flair-word", model=path)
    _, stored = extract(["the"], "flair-word", model=path, trust_pickle=True, cache_dir=str(tmp_path / "c"))
    np.testing.assert_allclose(stored.doc(["the"])[0], kv["the"], rtol=1e-6)


def test_unreadable_inputs_are_clear_errors(extract, tmp_path):
    with pytest.raises(OptionError, match="fastText .bin"):
        extract(["the"], "flair-word", model=FT_BIN)
    with pytest.raises(EmbedderUnavailable, match="no such vector file"):
        extract(["the"], "flair-word", model=str(tmp_path / "nope.txt"))
    odd = tmp_path / "vectors.dat"
    odd.write_text("the 0.5 0.25\n")
    with pytest.raises(OptionError, match="format="):
        extract(["the"], "flair-word", model=str(odd))
    _, stored = extract(["the"], "flair-word", model=str(odd), format="glove", cache_dir=str(tmp_path / "c"))
    np.testing.assert_allclose(stored.doc(["the"])[0], [0.5, 0.25])


def test_a_header_declaring_more_vectors_than_the_file_holds_is_refused(extract, tmp_path, monkeypatch):
    """Issue 22: refused naming the file before gensim allocates the declared matrix.

    In flair, or in the conversion.
    """
    def refuse(self, vector_size, count=0, *args, **kwargs):
        raise AssertionError(f"gensim allocated {count} x {vector_size} vectors")

    monkeypatch.setattr(KeyedVectors, "__init__", refuse)
    for name in ("huge.txt", "huge.vec", "huge.bin"):  # handed to flair as they are; .vec converted
        path = tmp_path / name
        path.write_bytes(b"1000000000 1000000\nthe 0.1 0.2\n")
        with pytest.raises(InputError, match=rf"refusing to read .*{name.replace('.', '[.]')}: its header declares "
                                             r"1,000,000,000 vectors of 1,000,000 dimensions"):
            extract(["the"], "flair-word", model=str(path), cache_dir=str(tmp_path / "c"))
