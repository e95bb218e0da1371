"""max, mean_max and last ignore padding; a text's vector does not depend on the batch it came in."""

from __future__ import annotations

import numpy as np
import pytest

TOL = 1e-5


def expected(states: np.ndarray, pooling: str) -> np.ndarray:
    """Straightforward pooling of one unpadded sequence ``[T, dim]``."""
    return {"max": states.max(0), "mean_max": np.concatenate([states.mean(0), states.max(0)]),
            "last": states[-1], "cls": states[0], "mean": states.mean(0)}[pooling]


@pytest.mark.parametrize("pooling", ["max", "mean_max", "last"])
def test_pooling_over_real_positions_only(extract, texts, reference, pooling):
    # Very different lengths in one batch: most rows carry lots of padding.
    sample = [texts[0], "Short.", "A few more words here.", texts[12], "x"]  # texts[0] is cut at 256
    _, stored = extract(sample, pooling=pooling, batch_size=len(sample))
    want = np.stack([expected(reference.states(t)[-1], pooling) for t in sample])
    assert stored.doc(sample).shape == want.shape
    assert np.abs(stored.doc(sample) - want).max() < TOL


def test_last_is_the_closing_sep(extract, reference):
    _, stored = extract(["The closing token is [SEP]."], pooling="last")
    ids = reference.ids("The closing token is [SEP].")
    assert ids[-1] == reference.tokenizer.sep_token_id
    assert np.abs(stored.doc(["The closing token is [SEP]."])[0] - reference.states_of_ids(ids)[-1][-1]).max() < TOL


@pytest.mark.parametrize("pooling", ["mean", "max", "cls", "last"])
def test_batch_composition_does_not_change_a_vector(extract, texts, tmp_path, pooling):
    target = "Bushfires forced hundreds of people from their homes."
    crowd = [texts[2], texts[15], "ok", target, texts[20]]
    _, alone = extract([target], pooling=pooling, store=tmp_path / "alone.h5")
    _, crowded = extract(crowd, pooling=pooling, store=tmp_path / "crowd.h5", batch_size=len(crowd),
                         token_budget=100_000)
    assert np.abs(alone.doc([target]) - crowded.doc([target])).max() < TOL


def test_empty_text_gets_the_vector_of_cls_sep(extract, reference):
    _, stored = extract(["", "word"])
    want = reference.states_of_ids([reference.tokenizer.cls_token_id, reference.tokenizer.sep_token_id])[-1].mean(0)
    assert np.abs(stored.doc([""])[0] - want).max() < TOL


def test_a_small_token_budget_splits_batches_without_changing_numbers(extract, texts, tmp_path):
    sample = texts[10:30]
    _, big = extract(sample, store=tmp_path / "a.h5", batch_size=20)
    _, small = extract(sample, store=tmp_path / "b.h5", batch_size=20, token_budget=64)
    assert np.abs(big.doc(sample) - small.doc(sample)).max() < TOL
