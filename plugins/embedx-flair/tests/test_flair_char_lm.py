"""flair-char-lm through the real pipeline and the real FlairEmbeddings: dims, direction order, alignment, keys."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
from flair_helpers import CORPUS, save_char_lm

from embedx.plugin_api import EmbedderUnavailable, OptionError, RegistryError


def flair_tokens(path: str, text: str) -> tuple[list[str], np.ndarray]:
    """What flair itself gives for ``text``: its tokens and their FlairEmbeddings vectors."""
    from flair.data import Sentence
    from flair.embeddings import FlairEmbeddings

    sentence = Sentence(text)
    FlairEmbeddings(path).embed(sentence)
    return [t.text for t in sentence], np.stack([t.embedding.numpy() for t in sentence])


def test_forward_lm_tokens_match_flair_and_doc_is_their_mean(extract, char_lms):
    texts = CORPUS[:2]
    report, stored = extract(texts, "flair-char-lm", outputs=("doc", "tokens"), forward=char_lms["forward"])
    assert report.computed == 2
    for text, (tokens, vectors), doc in zip(texts, stored.tokens(texts), stored.doc(texts), strict=True):
        want_tokens, want = flair_tokens(char_lms["forward"], text)
        assert tokens == want_tokens  # one row per flair token, in order
        assert vectors.shape == (len(tokens), 32)
        np.testing.assert_allclose(vectors, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(doc, vectors.mean(0), rtol=1e-5, atol=1e-6)
    assert tokens[:3] == ["A", "gripping", ","] and "n't" not in tokens and "'s" in tokens


def test_forward_and_backward_concatenate_forward_first(extract, char_lms, tmp_path):
    texts = CORPUS
    _, both = extract(texts, "flair-char-lm", outputs=("doc", "tokens"), **char_lms)
    _, fw = extract(texts, "flair-char-lm", outputs=("doc", "tokens"), forward=char_lms["forward"])
    _, bw = extract(texts, "flair-char-lm", outputs=("doc", "tokens"), backward=char_lms["backward"])
    doc = both.doc(texts)
    assert doc.shape == (4, 64)
    np.testing.assert_allclose(doc[:, :32], fw.doc(texts), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(doc[:, 32:], bw.doc(texts), rtol=1e-5, atol=1e-6)
    (tokens, vectors), = both.tokens(texts[:1])
    _, want_bw = flair_tokens(char_lms["backward"], texts[0])
    np.testing.assert_allclose(vectors[:, 32:], want_bw, rtol=1e-5, atol=1e-6)


def test_vectors_are_deterministic_and_independent_of_the_batch(extract, char_lms, tmp_path):
    texts = CORPUS * 2 + ["short", "a much longer text than the others, with plenty of characters to pad against"]
    _, batched = extract(texts, "flair-char-lm", store=tmp_path / "a.h5", **char_lms)
    _, alone = extract(texts[-2:-1], "flair-char-lm", store=tmp_path / "b.h5", **char_lms)
    _, again = extract(texts, "flair-char-lm", store=tmp_path / "c.h5", **char_lms)
    np.testing.assert_array_equal(batched.doc(texts), again.doc(texts))
    np.testing.assert_allclose(batched.doc(["short"]), alone.doc(["short"]), rtol=1e-5, atol=1e-6)


def test_empty_and_whitespace_texts_get_zero_vector_and_no_tokens(extract, char_lms):
    texts = ["", "   \t", "fine"]
    report, stored = extract(texts, "flair-char-lm", outputs=("doc", "tokens"), **char_lms)
    doc = stored.doc(texts)
    assert not doc[:2].any() and doc[2].any()
    (t0, v0), (t1, v1), (t2, v2) = stored.tokens(texts)
    assert t0 == t1 == [] and v0.shape == v1.shape == (0, 64)
    assert t2 == ["fine"] and v2.shape == (1, 64)
    assert report.empty == 2


def test_max_length_keeps_the_first_tokens_and_reports_the_cut(extract, char_lms):
    texts = [CORPUS[0], "two words"]
    report, cut = extract(texts, "flair-char-lm", outputs=("doc", "tokens"), max_length=3, forward=char_lms["forward"])
    _, full = extract(texts, "flair-char-lm", outputs=("doc", "tokens"), forward=char_lms["forward"])
    assert report.truncated_computed == 1
    np.testing.assert_array_equal(cut.truncated(texts), [7, 0])
    (kept, kept_vectors), _ = cut.tokens(texts)
    (all_tokens, all_vectors), _ = full.tokens(texts)
    assert kept == all_tokens[:3] == ["The", "quick", "brown"]
    # a forward LM reads left to right, so the kept tokens' vectors are those of the full text
    np.testing.assert_allclose(kept_vectors, all_vectors[:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cut.doc(texts)[0], kept_vectors.mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(RegistryError, match="max_length must be at least 1"):
        extract(texts, "flair-char-lm", max_length=0, forward=char_lms["forward"])


def test_cache_key_follows_content_and_options_not_the_path(extract, char_lms, tmp_path):
    store = tmp_path / "cache.h5"
    first, _ = extract(CORPUS, "flair-char-lm", store=store, forward=char_lms["forward"])
    moved = shutil.copy(char_lms["forward"], tmp_path / "renamed.pt")
    same, _ = extract(CORPUS, "flair-char-lm", store=store, forward=str(moved))
    assert same.set_name == first.set_name and same.computed == 0
    for options in ({"pooling": "max"}, {"chars_per_chunk": 7}, {"with_whitespace": False}, {"tokenizer": "space"}):
        other, _ = extract(CORPUS, "flair-char-lm", store=store, forward=char_lms["forward"], **options)
        assert other.set_name != first.set_name, options
    retrained = save_char_lm(tmp_path / "other.pt", True, seed=99)
    changed, _ = extract(CORPUS, "flair-char-lm", store=store, forward=retrained)
    assert changed.set_name != first.set_name and changed.computed == len(CORPUS)


def test_chunking_changes_only_speed(extract, char_lms, tmp_path):
    _, whole = extract(CORPUS, "flair-char-lm", store=tmp_path / "a.h5", **char_lms)
    _, chunked = extract(CORPUS, "flair-char-lm", store=tmp_path / "b.h5", chars_per_chunk=7, **char_lms)
    np.testing.assert_allclose(whole.doc(CORPUS), chunked.doc(CORPUS), rtol=1e-4, atol=1e-5)


def test_direction_mismatch_and_missing_model_are_clear(extract, char_lms, tmp_path):
    with pytest.raises(OptionError, match="holds a backward language model; pass it as backward="):
        extract(["x"], "flair-char-lm", forward=char_lms["backward"])
    with pytest.raises(RegistryError, match="forward=FILE.pt and/or backward=FILE.pt"):
        extract(["x"], "flair-char-lm")
    with pytest.raises(EmbedderUnavailable, match="no such file"):
        extract(["x"], "flair-char-lm", forward=str(tmp_path / "nope.pt"))


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_unread(extract, tmp_path):
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"is_forward_lm": True, "payload": Evil(marker)}, str(path), pickle_protocol=4)
    with pytest.raises(EmbedderUnavailable, match=r"refusing to load .*evil\.pt: it references posix\.system"):
        extract(["x"], "flair-char-lm", forward=str(path))
    assert not marker.exists()
    legacy = tmp_path / "legacy.pt"
    torch.save({"payload": Evil(marker)}, str(legacy), _use_new_zipfile_serialization=False)
    with pytest.raises(EmbedderUnavailable, match="trust_pickle=true"):
        extract(["x"], "flair-char-lm", forward=str(legacy))
    assert not marker.exists()
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(EmbedderUnavailable, match="does not start with the zip magic"):
        extract(["x"], "flair-char-lm", forward=str(plain))


def test_build_char_dictionary_puts_unk_first_and_keeps_the_markers():
    from embedx_flair import build_char_dictionary

    dictionary = build_char_dictionary(["aab", "ba", "c"], min_count=2)
    assert dictionary.get_items() == ["<unk>", "\n", " ", "a", "b"]
    assert dictionary.get_idx_for_item("c") == 0  # rare characters map to <unk>
    assert len(build_char_dictionary(["abcdef"], max_chars=5)) == 5
