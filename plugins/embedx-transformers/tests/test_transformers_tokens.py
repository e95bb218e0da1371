"""The tokens output: word pieces or words, without [CLS]/[SEP], stored in the HDF5 file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

TOL = 1e-5
TEXT = "Unbelievably, tokenizers split hyperparameterization!"
PIECES = ["un", "##bel", "##ie", "##va", "##bly", ",", "token", "##izer", "##s", "split",
          "hyper", "##para", "##meter", "##ization", "!"]
WORDS = ["Unbelievably", ",", "tokenizers", "split", "hyperparameterization", "!"]
SPANS = [(0, 5), (5, 6), (6, 9), (9, 10), (10, 14), (14, 15)]


def test_wordpiece_tokens_are_the_hidden_states_without_specials(extract, texts, reference):
    sample = [TEXT, texts[11], ""]
    _, stored = extract(sample, outputs=("doc", "tokens"))
    for text, (tokens, vectors) in zip(sample, stored.tokens(sample), strict=True):
        ids = reference.ids(text)
        assert tokens == reference.tokenizer.convert_ids_to_tokens(ids)[1:-1]
        assert vectors.shape == (len(ids) - 2, 384)
        if len(ids) > 2:
            assert np.abs(vectors - reference.states_of_ids(ids)[-1][1:-1]).max() < TOL
    assert stored.tokens([TEXT])[0][0] == PIECES


@pytest.mark.parametrize("how", ["first", "mean", "last"])
def test_word_level_pools_the_pieces_of_each_word(extract, reference, how):
    _, stored = extract([TEXT], outputs=("tokens",), token_level="word", subtoken_pooling=how, layers="-2")
    tokens, vectors = stored.tokens([TEXT])[0]
    assert tokens == WORDS  # the original text of each word, case kept
    pieces = reference.states(TEXT)[-2][1:-1]
    pick = {"first": lambda s, e: pieces[s], "last": lambda s, e: pieces[e - 1],
            "mean": lambda s, e: pieces[s:e].mean(0)}[how]
    want = np.stack([pick(s, e) for s, e in SPANS])
    assert np.abs(vectors - want).max() < TOL


def test_tokens_are_written_to_the_hdf5_file(extract):
    report, stored = extract([TEXT, "Two words"], outputs=("tokens",))
    with h5py.File(stored.path, "r") as handle:
        group = handle["sets"][report.set_name]["tokens"]
        flat = [t.decode() if isinstance(t, bytes) else t for t in group["tokens"][:]]
        assert sorted(flat) == sorted(PIECES + ["two", "words"])
        assert group["values"].shape == (len(PIECES) + 2, 384)


def test_per_layer_token_output(extract, reference):
    _, stored = extract([TEXT], outputs=("doc", "tokens"), layers="all")
    tokens, vectors = stored.tokens([TEXT])[0]
    assert vectors.shape == (len(PIECES), 7, 384)
    want = reference.states(TEXT)[:, 1:-1].transpose(1, 0, 2)
    assert np.abs(vectors - want).max() < TOL


def test_concatenated_layers_per_token(extract, reference):
    _, stored = extract([TEXT], outputs=("tokens",), layers="-1,-4", token_level="word", subtoken_pooling="mean")
    tokens, vectors = stored.tokens([TEXT])[0]
    states = reference.states(TEXT)
    pieces = np.concatenate([states[-1], states[-4]], axis=-1)[1:-1]
    want = np.stack([pieces[s:e].mean(0) for s, e in SPANS])
    assert vectors.shape == (len(WORDS), 768) and np.abs(vectors - want).max() < TOL
