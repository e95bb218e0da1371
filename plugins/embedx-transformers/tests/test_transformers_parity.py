"""Numbers through embedx.extract equal sentence-transformers and transformers' own hidden states."""

from __future__ import annotations

import numpy as np
import pytest

import embedx
from embedx.plugin_api.testing import Stored

TOL = 1e-5


def masked_mean(states: np.ndarray) -> np.ndarray:
    """Mean over every position of an unpadded sequence ([CLS] and [SEP] included)."""
    return states.mean(axis=-2)


def test_mean_equals_sentence_transformers(extract, texts, minilm_folder, registry, tmp_path):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_folder), device="cpu")
    assert st.max_seq_length == 256
    target = tmp_path / "preset.h5"  # the preset's own default (normalize=true), outside the raw-states fixture
    report = embedx.extract(texts, "minilm-l6", target, registry=registry)
    assert report.computed == len(texts) and report.truncated_computed >= 2  # long articles are cut, as in ST
    ours = Stored(target, report.set_name).doc(texts)
    expected = st.encode(texts, batch_size=16)  # all-MiniLM-L6-v2 ends in a Normalize module
    assert np.abs(ours - expected).max() < TOL

    raw = SentenceTransformer(modules=list(st)[:2], device="cpu")  # Transformer + Pooling(mean), no Normalize
    sample = texts[2:22]
    report, stored = extract(sample, batch_size=8, normalize=False)
    assert np.abs(stored.doc(sample) - raw.encode(sample)).max() < TOL


@pytest.mark.parametrize("layer", [-1, -2])
def test_cls_equals_hidden_states_of_that_layer(extract, texts, reference, layer):
    sample = texts[:1] + texts[10:25]
    _, stored = extract(sample, pooling="cls", layers=str(layer))
    expected = np.stack([reference.states(t)[layer][0] for t in sample])
    assert np.abs(stored.doc(sample) - expected).max() < TOL


def test_all_layers_are_stored_per_layer(extract, texts, reference, registry):
    embedder, _ = registry.create("minilm-l6", {"layers": "all"})
    (doc_spec, token_spec) = embedder.output_specs()
    assert (doc_spec.per_layer, doc_spec.layers, doc_spec.dim) == (True, 7, 384)  # known before load
    sample = texts[:1] + texts[10:20]
    _, stored = extract(sample, layers="all")
    ours = stored.doc(sample)
    assert ours.shape == (len(sample), 7, 384)
    expected = np.stack([masked_mean(reference.states(t)) for t in sample])
    assert np.abs(ours - expected).max() < TOL
    assert stored.info().outputs[0]["layers"] == 7


def test_layer_lists_concatenate_or_average(extract, texts, reference):
    sample = texts[10:20]
    states = [reference.states(t) for t in sample]
    _, stored = extract(sample, layers="-1,-2,-3,-4")
    expected = np.stack([np.concatenate([masked_mean(s[i]) for i in (-1, -2, -3, -4)]) for s in states])
    assert stored.doc(sample).shape == (len(sample), 4 * 384)
    assert np.abs(stored.doc(sample) - expected).max() < TOL
    _, stored = extract(sample, layers="-1,-2,-3,-4", layer_combine="mean")
    expected = np.stack([masked_mean(s[[-1, -2, -3, -4]].mean(0)) for s in states])
    assert np.abs(stored.doc(sample) - expected).max() < TOL


@pytest.mark.parametrize("layers", ["0", "2", "-3"])
def test_lower_layers_run_a_shorter_model_with_the_same_numbers(extract, texts, reference, registry, layers):
    embedder, _ = registry.create("minilm-l6", {"layers": layers})
    embedder.requested_outputs = ("doc",)
    embedder.load()
    index = int(layers) % 7
    assert len(embedder._view.encoder.layer) == index  # only the layers below the requested state run
    assert len(embedder._rt.model.encoder.layer) == 6  # the shared full model is untouched
    sample = texts[10:18]
    _, stored = extract(sample, layers=layers)
    expected = np.stack([masked_mean(reference.states(t)[index]) for t in sample])
    assert np.abs(stored.doc(sample) - expected).max() < TOL
