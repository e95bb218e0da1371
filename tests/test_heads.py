"""Heads trained on real cached features (SMS spam, hashed n-grams) through scikit-learn and PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx import datasets
from embedx.cli import app
from embedx.heads.data import HeadData
from embedx.store.reader import FeatureStore
from embedx.training import SplitSpec, load_head, predict, train

SPLIT = SplitSpec(seed=0, samples_per_class=300)


@pytest.fixture(scope="module")
def sms(tmp_path_factory):
    """A feature file with the real SMS spam corpus embedded by the built-in hashing embedder."""
    ds = datasets.load("sms-spam", fetch=True)
    path = tmp_path_factory.mktemp("heads") / "sms.h5"
    embedx.extract(ds.texts, "hashing-ngrams", path, name="sms", columns={"label": list(ds.labels)},
                   options={"dim": 512})
    return path


@pytest.mark.parametrize("head, floor", [("logreg", 0.93), ("linear-svm", 0.93), ("random-forest", 0.9),
                                         ("gradient-boosting", 0.85), ("dense", 0.9)])
def test_each_head_learns_spam(sms, head, floor):
    options = {"n_estimators": 60} if head in ("random-forest", "gradient-boosting") else {}
    outcome = train(head, sms, "hashing-ngrams", "label", split=SPLIT, options=options)
    assert outcome.classes == ["ham", "spam"]
    assert outcome.sizes == {"train": 420, "validation": 90, "test": 90}
    assert outcome.test["accuracy"] >= floor, outcome.test
    assert 0 < outcome.test["macro_f1"] <= 1


def test_dense_head_records_curves_and_keeps_the_best_epoch(sms):
    outcome = train("dense", sms, "hashing-ngrams", "label", split=SPLIT, options={"patience": 3})
    curves = outcome.curves
    assert set(curves) == {"train_loss", "val_loss", "train_accuracy", "val_accuracy"}
    best = outcome.chosen["epochs"]
    assert curves["val_loss"][best - 1] == min(curves["val_loss"])
    assert len(curves["val_loss"]) == best + 3  # stopped after `patience` epochs without improvement


def test_streaming_logreg_matches_the_exact_solver(sms):
    exact = train("logreg", sms, "hashing-ngrams", "label", split=SPLIT, options={"C": "0.1"})
    streamed = train("logreg", sms, "hashing-ngrams", "label", split=SPLIT,
                     options={"C": "0.1", "max_memory_mb": 0, "chunk_rows": 64, "epochs": 20})
    assert streamed.chosen["solver"] == "sgd" and exact.chosen["solver"] == "exact"
    assert abs(streamed.test["accuracy"] - exact.test["accuracy"]) <= 0.05


def test_linear_heads_read_in_chunks_not_all_at_once(sms, monkeypatch):
    calls = []
    original = HeadData.array

    def spy(self):
        calls.append(len(self))
        return original(self)

    monkeypatch.setattr(HeadData, "array", spy)
    train("logreg", sms, "hashing-ngrams", "label", split=SPLIT,
          options={"C": "1", "solver": "sgd", "chunk_rows": 50, "epochs": 2})
    assert max(calls) <= 90  # chunks of 50 training rows, and the 90-row validation/test parts


def test_grid_search_picks_the_best_on_validation(sms):
    outcome = train("dense", sms, "hashing-ngrams", "label", split=SPLIT,
                    grid={"hidden": ["8", "64"], "lr": ["0.01"]})
    assert len(outcome.grid) == 2
    best = max(outcome.grid, key=lambda g: g["validation"]["accuracy"])
    assert outcome.validation == best["validation"]


def test_save_load_and_predict_through_the_cache(sms, tmp_path):
    out = tmp_path / "head"
    trained = train("logreg", sms, "hashing-ngrams", "label", split=SPLIT, save=out)
    head, meta = load_head(out)
    assert meta["outcome"]["test"] == trained.test
    texts = ["WINNER!! You have won a free prize, call 09061701461 now to claim",
             "ok see you at lunch tomorrow then"]
    labels, proba = predict(out, texts)
    assert labels == ["spam", "ham"] and proba.shape == (2, 2)
    report = embedx.extract(texts, "hashing-ngrams", sms, options={"dim": 512})
    assert report.computed == 0  # the prediction already cached them


def test_layer_mix_finds_the_informative_layer(tmp_path):
    """Fake per-layer features where only layer 2 carries the label: the learned weights must say so."""
    import fakes
    from embedx.registry import build_registry, set_registry

    rng = np.random.default_rng(0)
    n, layers, dim = 600, 4, 8
    y = rng.integers(0, 2, n)
    feats = rng.normal(size=(n, layers, dim)).astype(np.float32)
    feats[:, 2, 0] += 3 * (2 * y - 1)
    texts = [f"text {i}" for i in range(n)]
    table = {t: feats[i] for i, t in enumerate(texts)}

    class Layered(embedx.Embedder):
        id = "fake-layers"
        outputs = (embedx.Output("doc", embedx.DOCUMENT, dim=dim, per_layer=True, layers=layers),)
        default_outputs = ("doc",)

        def embed_batch(self, batch):
            return {"doc": np.stack([table[t] for t in batch])}

    module = type(fakes)("layered_plugin")
    module.register_embedders = embedx.hookimpl(lambda register: register(Layered))
    set_registry(build_registry(extra_plugins=[("layered", module)]))
    try:
        path = tmp_path / "layers.h5"
        embedx.extract(texts, "fake-layers", path, name="t", columns={"y": [str(v) for v in y]})
        outcome = train("layer-mix", path, "fake-layers", "y", split=SplitSpec(seed=1))
        weights = outcome.extra["layer_weights"]
        assert np.argmax(weights) == 2 and weights[2] > 0.4, weights
        assert outcome.test["accuracy"] > 0.95
    finally:
        set_registry(None)


def test_layer_mix_refuses_features_without_layers(tmp_path):
    path = tmp_path / "flat.h5"
    embedx.extract([f"text {i}" for i in range(40)], "hashing-ngrams", path, name="t",
                   columns={"y": ["0", "1"] * 20}, options={"dim": 16})
    with pytest.raises(embedx.EmbedxError, match="needs a per-layer output"):
        train("layer-mix", path, "hashing-ngrams", "y")


def test_layer_mix_on_per_layer_token_features(registry, tmp_path):
    """The fake `layered` embedder stores [n_tokens, 3, 2] per text; the head mixes, pools and classifies."""
    words = ["aa", "bbbb", "c", "ddddd"]
    rng = np.random.default_rng(3)
    texts, labels = [], []
    for i in range(300):
        long = i % 2
        picked = rng.choice(words[1::2] if long else words[0::2], size=rng.integers(1, 5))
        texts.append(" ".join(picked) + f" {i}")
        labels.append("long" if long else "short")
    path = tmp_path / "tok.h5"
    embedx.extract(texts, "layered", path, name="t", columns={"y": labels}, outputs=["layers"])
    outcome = train("layer-mix", path, "layered", "y", split=SplitSpec(seed=0))
    assert outcome.output == "layers" and outcome.test["accuracy"] > 0.9
    assert len(outcome.extra["layer_weights"]) == 3


def test_cli_train_and_predict(sms, tmp_path):
    runner = CliRunner()
    out = tmp_path / "h"
    result = runner.invoke(app, ["train", "logreg", "-f", str(sms), "-e", "hashing-ngrams", "--labels", "label",
                                 "--samples-per-class", "300", "--save", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["test"]["accuracy"] > 0.9
    result = runner.invoke(app, ["predict", str(out), "Free entry! Text WIN to 80086 to claim your prize", "--proba"])
    assert result.exit_code == 0 and result.output.startswith("spam\t")
    result = runner.invoke(app, ["train", "nope", "-f", str(sms), "-e", "hashing-ngrams", "--labels", "label"])
    assert result.exit_code == 2 and "no head 'nope'" in result.output
    result = runner.invoke(app, ["train", "logreg", "-f", str(sms), "-e", "hashing-ngrams", "--labels", "colour"])
    assert result.exit_code == 2 and "no column 'colour'" in result.output


def test_readers_feed_numpy_torch_and_tf(sms):
    from embedx.readers import iter_numpy, tf_dataset, torch_dataset

    with FeatureStore(sms) as store:
        expected = store.feature_set("hashing-ngrams").vectors(input="sms")
    chunks = list(iter_numpy(sms, "hashing-ngrams", input="sms", labels="label", chunk_size=1000))
    assert np.array_equal(np.concatenate([X for X, _ in chunks]), expected)

    import torch

    dataset = torch_dataset(sms, "hashing-ngrams", input="sms", labels="label")
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=False)
    X, y = next(iter(loader))
    assert torch.equal(X, torch.from_numpy(expected[:256])) and dataset.classes == ["ham", "spam"]

    ds = tf_dataset(sms, "hashing-ngrams", input="sms", labels="label", chunk_size=500).batch(700)
    first_x, first_y = next(iter(ds))
    assert np.array_equal(first_x.numpy(), expected[:700]) and first_y.shape == (700,)
