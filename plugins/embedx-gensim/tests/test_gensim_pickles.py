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


# Issue 22: a .kv file may not make the loader allocate more than it stores.


def _huge_npy(path, shape=(100_000_000, 100)):
    from numpy.lib import format as npy

    with open(path, "wb") as handle:
        npy.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": shape})
        handle.write(bytes(16))


def test_a_side_array_declaring_more_than_it_holds_is_refused(extract, small_kv, tmp_path):
    path = str(tmp_path / "vectors.kv")
    small_kv.save(path, separately=["vectors"])
    _huge_npy(path + ".vectors.npy")
    with pytest.raises(EmbedderUnavailable, match=r"refusing to load .*vectors\.kv: its side file vectors\.kv\."
                                                  r"vectors\.npy declares a \(100000000, 100\) float32 array of "
                                                  r"40,000,000,000 bytes but holds 16"):
        extract(["the"], model=path)


def test_a_compressed_kv_loads_and_its_npz_side_array_is_checked(extract, small_kv, tmp_path):
    import zipfile

    path = str(tmp_path / "vectors.kv.gz")
    small_kv.save(path, separately=["vectors"])  # compressed: the side array goes to <path>.vectors.npz
    side = path + ".vectors.npz"
    assert os.path.exists(side)
    _, stored = extract(["australia"], model=path)
    np.testing.assert_allclose(stored.doc(["australia"])[0], small_kv["australia"], rtol=1e-6)
    _huge_npy(tmp_path / "val.npy")
    with zipfile.ZipFile(side, "w") as archive:
        archive.write(tmp_path / "val.npy", "val.npy")
    with pytest.raises(EmbedderUnavailable, match=r"vectors\.npz \(val\.npy\) declares a \(100000000, 100\)"):
        extract(["the"], model=path, store=tmp_path / "again.h5")


@pytest.mark.parametrize("name, payload, reason", [
    ("bytes.kv", b"\x80\x04\x8e" + (1 << 30).to_bytes(8, "little") + b"abc",
     r"it declares 1,073,741,824 more bytes where the file holds only 3"),
    ("unicode.kv", b"\x80\x04\x8d" + (1 << 30).to_bytes(8, "little") + b"abc",
     r"it declares 1,073,741,824 more bytes where the file holds only 3"),
    ("petabyte.kv", b"\x80\x04\x8e" + (1 << 50).to_bytes(8, "little") + b"abc",
     r"it declares (an object larger than this machine's memory|1,125,899,906,842,624 more bytes)"),
    ("bytearray.kv", b"\x80\x02cbuiltins\nbytearray\nJ\x00\xe4\x0bT\x85R.",
     r"it calls bytearray with something other than data"),
    ("reconstruct.kv", b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xca\x9a;J\x00\xca\x9a;"
                       b"\x86C\x01b\x87R.",
     r"it reconstructs a numpy array of shape \(1000000000, 1000000000\) without its data"),
])
def test_pickles_that_would_allocate_what_they_do_not_hold_are_refused(extract, tmp_path, name, payload, reason):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(EmbedderUnavailable, match=rf"refusing to load .*{name.replace('.', '[.]')}: {reason}"):
        extract(["the"], model=str(path))


def test_a_compressed_pickle_may_not_inflate_past_the_ratio(extract, tmp_path):
    import gzip

    path = tmp_path / "bomb.kv.gz"
    size = 200 << 20
    with gzip.open(path, "wb") as handle:  # one 200 MiB bytes object: about 200 KB on disk
        handle.write(b"\x80\x04\x8e" + size.to_bytes(8, "little"))
        for _ in range(200):
            handle.write(bytes(1 << 20))
        handle.write(b".")
    with pytest.raises(EmbedderUnavailable, match=r"bomb\.kv\.gz: it declares 209,715,200 more bytes where a "
                                                  r"compressed file of [\d,]+ bytes \(100x\) holds only [\d,]+"):
        extract(["the"], model=str(path))
