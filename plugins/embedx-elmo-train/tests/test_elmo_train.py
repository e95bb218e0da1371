"""The ELMo biLM trainer and exporter: training lowers held-out perplexity, a run resumes, and the
exported module has ELMo's interface, equals the trained model's forward pass and runs through the
`elmo` embedder, hub.KerasLayer and the Keras mix fine-tuner."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from embedx_elmo_train.train import ElmoTrainingError, TrainSettings, load_trained, train_bilm
from embedx_tfhub.corpus import Corpus

#: small enough to train in seconds; the module interface needs the 512 projection (ELMo's)
TINY = {"cell_dim": 16, "filters": ((1, 8), (2, 8), (3, 16)), "max_chars": 10, "highway": 1, "n_samples": 64}


@pytest.fixture(scope="module")
def sentences():
    """About 400 sentences of Lee's news corpus (gensim ships it)."""
    from gensim.test.utils import datapath

    text = open(datapath("lee_background.cor"), encoding="utf-8").read()
    return [s.strip() + " ." for s in re.split(r"\. ", text) if len(s.split()) > 3][:400]


def test_tiny_training_lowers_heldout_perplexity(sentences, tmp_path):
    settings = TrainSettings(max_train_tokens=0, epochs=3, heldout=40, min_count=2, max_vocab=500, batch_size=16,
                             learning_rate=5e-3)
    result = train_bilm(Corpus.of(texts=sentences[:250]), tmp_path / "run",
                        TINY | {"projection_dim": 32, "cell_dim": 32}, settings)
    report = result.report
    before, after = report["perplexity_before"], report["perplexity_after"]
    assert before["mean"] > 200  # an untrained model is about uniform over the vocabulary
    assert after["forward"] < 0.5 * before["forward"] and after["backward"] < 0.5 * before["backward"], (before, after)
    assert report["epochs_completed"] == 3 and report["corpus"]["heldout_sequences"] == 40
    spread = report["spread_after"]
    assert set(spread) == {"word_emb", "lstm_outputs1", "lstm_outputs2"} and all(v > 0 for v in spread.values())
    assert report["collapsed_layers"] == [
        name for name in spread if spread[name] < 0.05 * report["spread_before"][name]
    ]
    heldout = (tmp_path / "run" / "heldout.txt").read_text().splitlines()
    assert len(heldout) == 40
    assert json.loads((tmp_path / "run" / "report.json").read_text())["perplexity_after"] == after


def test_heldout_text_never_trains_and_every_source_is_streamed(sentences):
    from embedx_elmo_train.sequences import Vocabulary, batches, summarize

    corpus = Corpus.of(texts=sentences)
    summary = summarize(corpus, max_tokens=12, heldout=30, min_count=1, max_vocab=None)
    assert len(summary.heldout) == 30
    vocab = Vocabulary(summary.words)

    def stream():
        return [
            " ".join(row[:n])
            for b in batches(corpus, summary.heldout_keys, summary.counts_per_source, vocab, 12, 8, seed=0, epoch=0)
            for row, n in zip(b.tokens, b.lengths, strict=True)
        ]

    streamed = stream()
    held = {" ".join(s) for s in summary.heldout}
    assert len(streamed) == sum(summary.counts_per_source) - 30 and not held & set(streamed)
    again = stream()
    assert again == streamed  # the order a resumed run regenerates
    assert sum(s.count(" ") + 1 for s in streamed) + sum(map(len, summary.heldout)) == sum(
        len(t.split()) for t in sentences)


def test_a_run_resumes_and_other_settings_are_refused(sentences, tmp_path):
    corpus = Corpus.of(texts=sentences)
    sizes = TINY | {"projection_dim": 16}
    first = train_bilm(corpus, tmp_path / "run", sizes, TrainSettings(max_train_tokens=1500, heldout=20, batch_size=16))
    assert 1500 <= first.report["tokens_trained"] < 2500
    more = train_bilm(corpus, tmp_path / "run", sizes, TrainSettings(max_train_tokens=3000, heldout=20, batch_size=16))
    assert more.report["steps"] > first.report["steps"]
    assert more.report["perplexity_before"] == first.report["perplexity_before"]  # measured once, kept
    state = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())
    assert state["tokens_seen"] == more.report["tokens_trained"] >= 3000
    with pytest.raises(ElmoTrainingError, match="other settings"):
        train_bilm(corpus, tmp_path / "run", sizes | {"cell_dim": 8}, TrainSettings(heldout=20, batch_size=16))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ElmoTrainingError, match="other files"):
        train_bilm(corpus, tmp_path / "busy", sizes, TrainSettings(heldout=20))


@pytest.fixture(scope="module")
def exported(sentences, tmp_path_factory):
    """A briefly trained 512-projection biLM and its exported module."""
    from embedx_elmo_train.export import export_elmo

    root = tmp_path_factory.mktemp("elmo-bilm")
    train_bilm(Corpus.of(texts=sentences[:120]), root / "run", TINY,
               TrainSettings(max_train_tokens=600, heldout=10, batch_size=16, min_count=1))
    meta = export_elmo(root / "run", root / "module")
    return root / "run", root / "module", meta


SAMPLE = [["The", "cat", "sat", "on", "the", "mat", "."], ["Hello", "world"], ["naïve", "café", "—", "x" * 40]]


def _padded(tf, batch):
    width = max(len(t) for t in batch)
    return (tf.constant([t + [""] * (width - len(t)) for t in batch]), tf.constant([len(t) for t in batch], tf.int32))


def test_export_has_the_published_interface_and_equals_the_trained_forward_pass(exported, tf, hub):
    run, module_dir, meta = exported
    module = hub.load(str(module_dir))
    assert set(module.signatures) == {"default", "tokens"}
    tokens, lengths = _padded(tf, SAMPLE)
    out = module.signatures["tokens"](tokens=tokens, sequence_len=lengths)
    assert set(out) == {"word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default"}
    width = max(len(t) for t in SAMPLE)
    expected = {"word_emb": (3, width, 512), "lstm_outputs1": (3, width, 1024), "lstm_outputs2": (3, width, 1024),
                "elmo": (3, width, 1024), "default": (3, 1024)}
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    assert all(v.dtype == tf.float32 for v in out.values())
    assert sorted(v.name for v in module.trainable_variables) == ["aggregation/scaling:0", "aggregation/weights:0"]
    model, _, _ = load_trained(run)
    own = model.features(tokens, lengths)
    for name in ("word_emb", "lstm_outputs1", "lstm_outputs2"):
        np.testing.assert_allclose(out[name].numpy(), own[name].numpy(), atol=1e-5)
    by_text = module.signatures["default"](default=tf.constant([" ".join(t) for t in SAMPLE]))
    for name in expected:
        np.testing.assert_allclose(by_text[name].numpy(), out[name].numpy(), atol=1e-5)
    layers = [np.concatenate([own["word_emb"], own["word_emb"]], -1), own["lstm_outputs1"], own["lstm_outputs2"]]
    np.testing.assert_allclose(out["elmo"].numpy(), sum(layers) / 3, atol=1e-5)  # equal weights, scale 1
    assert np.abs(out["lstm_outputs2"].numpy()[1, 2:]).max() == 0  # padding is zero
    assert meta["step"] >= 1 and meta["model"]["cell_dim"] == 16


def test_export_runs_through_the_elmo_embedder_keras_layer_and_fine_tuner(exported, extract, tf, hub):
    from embedx_tfhub import keras_models

    _, module_dir, _ = exported
    texts = [" ".join(t) for t in SAMPLE] + [""]
    report, stored = extract(texts, "elmo", outputs=["default", "layers"], model=str(module_dir))
    assert report.computed == 4
    direct = hub.load(str(module_dir)).signatures["default"](default=tf.constant(texts[:3]))["default"].numpy()
    np.testing.assert_allclose(stored.doc(texts[:3], "default"), direct, atol=1e-5)
    assert not stored.doc(texts[3:], "default").any()
    tokens, layers = stored.tokens(texts[:1], "layers")[0]
    assert tokens == SAMPLE[0] and layers.shape == (7, 3, 1024)

    layer = hub.KerasLayer(str(module_dir), signature="default", signature_outputs_as_dict=True)
    assert tuple(layer(tf.constant(texts[:2]))["elmo"].shape) == (2, 7, 1024)
    model = keras_models.elmo_classifier(str(module_dir), hidden=(4,), learning_rate=0.05)
    before = keras_models.elmo_mix_scalars(model)
    model.fit(tf.constant(texts[:3] * 4), np.array([0, 1, 1] * 4), epochs=2, verbose=0)
    after = keras_models.elmo_mix_scalars(model)
    assert not np.allclose(before["weights"], after["weights"])


def test_cli_trains_exports_and_explains_errors(sentences, tmp_path):
    from embedx_elmo_train import cli as elmo_cli

    app = typer.Typer()

    @app.callback()
    def main():
        """embedx (test root)."""

    elmo_cli.register(app)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sentences[:80]) + "\n", encoding="utf-8")
    runner = CliRunner()
    common = ["--cell-dim", "8", "--filters", "1:4,2:4", "--max-chars", "8", "--highway", "0", "--n-samples", "16",
              "--heldout", "5", "--max-train-tokens", "300", "--min-count", "1"]
    result = runner.invoke(app, ["elmo", "train", str(corpus), "--out", str(tmp_path / "run"), "--no-progress",
                                 "--json", *common])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (
        report["module"]["format"] == "embedx-elmo-module"
        and (tmp_path / "run" / "module" / "saved_model.pb").is_file()
    )
    result = runner.invoke(app, ["elmo", "export", str(tmp_path / "run"), "--out", str(tmp_path / "run" / "module")])
    assert result.exit_code != 0 and "--overwrite" in result.output
    result = runner.invoke(app, ["elmo", "train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "missing.txt" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["elmo", "train", str(corpus), "--out", str(tmp_path / "y"), "--filters", "3"])
    assert result.exit_code != 0 and "width:count" in result.output
    result = runner.invoke(app, ["elmo", "export", str(tmp_path), "--out", str(tmp_path / "z")])
    assert result.exit_code != 0 and "not an `embedx elmo train` folder" in result.output


def test_trained_preset_says_why_it_cannot_run_without_a_module(registry, tmp_path, monkeypatch, exported):
    from embedx.plugin_api.testing import describe_embedders
    from embedx_tfhub.elmo_trained import MODULE_ENV, TrainedElmo, TrainedElmoFineTuner

    monkeypatch.setenv(MODULE_ENV, str(tmp_path / "nowhere"))
    row = next(r for r in describe_embedders(registry) if r["id"] == "elmo-trained")
    assert not row["available"] and "embedx elmo train" in row["reason"] and "nowhere" in row["reason"]
    with pytest.raises(Exception, match="no trained ELMo module"):
        TrainedElmoFineTuner()
    monkeypatch.setenv(MODULE_ENV, str(exported[1]))
    assert TrainedElmo().unavailable_reason() is None
    assert TrainedElmoFineTuner().handle == str(exported[1])
    assert "keras-elmo-trained" in registry.finetuners
    # the module it finds by default is what bench compare's journal hashes; an explicit handle wins
    assert TrainedElmoFineTuner.model_paths({}) == {"handle": str(exported[1])}
    assert TrainedElmoFineTuner.model_paths({"handle": "elsewhere", "epochs": "3"}) == {
        "handle": "elsewhere",
        "epochs": "3",
    }


def test_installed_entry_point_adds_the_elmo_group_without_importing_tensorflow():
    """`embedx elmo` comes from this package's own entry point; registering it imports no TensorFlow."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from embedx.plugin_api.testing import build_registry, cli_app\n"
            "assert 'elmo' in build_registry().plugins\n"
            "from typer.testing import CliRunner\n"
            "out = CliRunner().invoke(cli_app(), ['elmo', '--help']).output\n"
            "assert 'train' in out and 'export' in out, out\n"
            "assert 'tensorflow' not in sys.modules\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
