"""TF Hub BERT encoders: WordPiece from the module, first/mean/max pooling, layers, tokens, bucketing."""

from __future__ import annotations

import numpy as np
import pytest

from embedx.plugin_api import EmbedderUnavailable, OptionError, RegistryError
from embedx_tfhub.bert import TfHubBert
from embedx_tfhub.bucketing import bucket, length_buckets

TEXTS = ["The film was GOOD!", "a dull, boring movie that was far too long for its story", "", "xyzzy 42"]


@pytest.fixture(scope="module")
def reference(modules, hub, tf):
    """Run the module directly on [CLS] pieces [SEP], no padding, one text at a time; the embedder must agree."""
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    module = hub.load(modules["bert"])
    vocab = module.vocab_file.asset_path.numpy().decode()
    tokenizer = BertWordPieceTokenizer(WordPiece.read_file(vocab), lowercase=bool(module.do_lower_case.numpy()))
    rows = []
    for text in TEXTS:
        enc = tokenizer.encode(text)  # adds [CLS] and [SEP]
        ids = tf.constant([enc.ids], tf.int32)
        out = module({"input_word_ids": ids, "input_mask": tf.ones_like(ids), "input_type_ids": tf.zeros_like(ids)})
        rows.append({"tokens": enc.tokens, "layers": np.stack([o.numpy()[0] for o in out["encoder_outputs"]]),
                     "pooled": out["pooled_output"].numpy()[0]})
    return rows


def manual(layers: np.ndarray, pooling: str) -> np.ndarray:
    """``layers`` [L, T, H] of one unpadded text pooled over T, with numpy."""
    if pooling == "first":
        return layers[:, 0]
    if pooling == "mean":
        return layers.sum(1) / (layers.shape[1] + 1e-10)
    return layers.max(1)


@pytest.mark.parametrize("pooling", ["first", "mean", "max"])
def test_pooling_matches_numpy_on_every_layer(extract, modules, reference, pooling):
    report, stored = extract(TEXTS, "tfhub-bert", model=modules["bert"], pooling=pooling, layers="all")
    doc = stored.doc(TEXTS, "doc")
    assert doc.shape == (4, 3, 32)  # all 3 blocks, per layer
    for i, ref in enumerate(reference):
        np.testing.assert_allclose(doc[i], manual(ref["layers"], pooling), atol=1e-5)


@pytest.mark.parametrize(
    "layers, picked", [("-1", [2]), ("-2", [1]), ("1", [0]), ("3,1", [2, 0]), ("-1,-2,-3", [2, 1, 0])]
)
def test_layer_choice(extract, modules, reference, layers, picked):
    _, stored = extract(TEXTS, "tfhub-bert", model=modules["bert"], layers=layers, pooling="mean")
    doc = stored.doc(TEXTS, "doc")
    for i, ref in enumerate(reference):
        expected = manual(ref["layers"][picked], "mean")
        np.testing.assert_allclose(doc[i], expected[0] if len(picked) == 1 else expected, atol=1e-5)
    assert doc.shape == ((4, 32) if len(picked) == 1 else (4, len(picked), 32))


def test_pooled_output_and_tokens(extract, modules, reference):
    _, stored = extract(TEXTS, "tfhub-bert", outputs=["pooled_output", "tokens"], model=modules["bert"],
                        layers="-1,-3")
    pooled = stored.doc(TEXTS, "pooled_output")
    tokens = stored.tokens(TEXTS, "tokens")
    for i, ref in enumerate(reference):
        np.testing.assert_allclose(pooled[i], ref["pooled"], atol=1e-5)
        pieces, rows = tokens[i]
        assert pieces == ref["tokens"][1:-1]  # [CLS] and [SEP] left out
        np.testing.assert_allclose(rows, ref["layers"][[2, 0]][:, 1:-1].transpose(1, 0, 2), atol=1e-5)
    assert tokens[0][0] == ["the", "film", "was", "good", "!"]  # lowercased by the module's do_lower_case
    assert tokens[2][0] == [] and tokens[2][1].shape == (0, 2, 32)  # blank: [CLS] [SEP] only


def test_blank_text_is_cls_sep(extract, modules, reference):
    _, stored = extract([""], "tfhub-bert", model=modules["bert"], pooling="first")
    np.testing.assert_allclose(stored.doc([""], "doc")[0], reference[2]["layers"][-1, 0], atol=1e-5)
    assert reference[2]["tokens"] == ["[CLS]", "[SEP]"]


def test_max_length_cuts_and_counts(extract, modules):
    report, stored = extract(TEXTS, "tfhub-bert", outputs=["tokens"], model=modules["bert"], max_length=5)
    cut = stored.truncated(TEXTS)
    tokens = stored.tokens(TEXTS, "tokens")
    assert all(len(t[0]) <= 3 for t in tokens)
    assert cut[0] == 5 - 3 and cut[2] == 0
    assert report.truncated_computed == int((cut > 0).sum())


def test_bucketing_bounds_traces_and_changes_no_number(modules):
    texts = [" ".join(["good"] * n) for n in range(1, 20)]  # one piece per word: 3..21 positions
    results, traces = {}, {}
    for bucketing in (True, False):
        embedder = TfHubBert(model=modules["bert"], pooling="mean", layers="all", bucketing=bucketing)
        embedder.requested_outputs = ("doc", "tokens")
        embedder.load()
        batches = [texts[i:i + size] for size in (6, 5) for i in range(0, len(texts), size)]
        results[bucketing] = [embedder.embed_batch(b).outputs for b in batches]
        traces[bucketing] = embedder.traces
    for on, off in zip(results[True], results[False], strict=True):
        np.testing.assert_allclose(on["doc"], off["doc"], atol=1e-5)
        for a, b in zip(on["tokens"].arrays, off["tokens"].arrays, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    # 3..21 positions fall in the length buckets 8, 16, 32; batches of 1..6 rows in at most 4 row buckets
    assert traces[True] <= 3 * 4
    assert traces[False] >= len({(len(b), len(b[-1].split()) + 2) for b in batches}) > traces[True]
    assert length_buckets(512) == [8, 16, 32, 64, 128, 256, 512] and length_buckets(100) == [8, 16, 32, 64, 100]
    assert bucket(41, 512, 8) == 64 and bucket(3, 512, 8) == 8 and bucket(600, 512, 8) == 512 and bucket(5, 7) == 7


def test_bad_layers_and_modules_are_refused(registry, modules):
    with pytest.raises(RegistryError, match="embedding output"):
        registry.create("tfhub-bert", {"model": modules["bert"], "layers": "0"})
    with pytest.raises(RegistryError, match="comma list"):
        registry.create("tfhub-bert", {"model": modules["bert"], "layers": "last"})
    embedder, _ = registry.create("tfhub-bert", {"model": modules["bert"], "layers": "-4"})
    with pytest.raises(OptionError, match="blocks 1..3"):
        embedder.load()
    not_bert, _ = registry.create("tfhub-bert", {"model": modules["text"]})
    with pytest.raises(EmbedderUnavailable, match="not a TF2 BERT encoder"):
        not_bert.load()
