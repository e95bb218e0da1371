"""`embedx bench compare` on real data at a tiny size: results, report, plots, cache reuse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedx.bench.config import BenchConfig
from embedx.bench.report import aggregate, write_report
from embedx.bench.runner import Comparison

TESTS = str(Path(__file__).parent)


@pytest.fixture
def fake_plugins(monkeypatch, registry):
    """The fake plugin in this process and in the fine-tuning worker subprocess."""
    monkeypatch.setenv("EMBEDX_PLUGIN_MODULES", "fakes")
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


def small_config(**overrides) -> BenchConfig:
    config = BenchConfig(datasets=["sms-spam"], embedders=["hashing-ngrams:dim=256", "word-stats", "layered"],
                         heads=["logreg", "dense"], finetuners=["char-count-tuner"], seeds=[0, 1],
                         samples_per_class=60, finetune_samples_per_class=30, layer_sweep=None)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def test_compare_runs_heads_and_finetuning_and_writes_a_report(fake_plugins, tmp_path):
    results = Comparison(small_config(), tmp_path, log=lambda m: None).run()
    rows = results["rows"]
    heads = {(r["features"], r["head"]) for r in rows}
    assert ("hashing-ngrams[dim=256]", "logreg") in heads and ("word-stats", "dense") in heads
    assert ("char-count-tuner", "fine-tune") in heads
    assert ("layered", "logreg") in heads  # a per-layer document output is flattened for plain heads
    assert len([r for r in rows if r["head"] == "logreg"]) == 3 * 2  # 3 embedders x 2 seeds
    tuned = [r for r in rows if r["head"] == "fine-tune"][0]
    assert tuned["n_train"] == 60 and tuned["peak_rss_mb"] > 0
    assert 0.5 < tuned["test"]["accuracy"] <= 1
    table = aggregate(results)["sms-spam"]
    assert all(r["seeds"] == 2 for r in table if r["head"] != "fine-tune")
    report = write_report(results, tmp_path)
    text = report.read_text()
    assert "| features | head | test accuracy" in text and "char-count-tuner" in text
    assert (tmp_path / "cost-sms-spam.png").stat().st_size > 10_000
    assert (tmp_path / "curves-sms-spam.png").exists()
    assert json.loads((tmp_path / "results.json").read_text())["config"]["seeds"] == [0, 1]


def test_second_run_recomputes_nothing_and_keeps_first_extraction_time(fake_plugins, tmp_path):
    first = Comparison(small_config(finetuners=[]), tmp_path, log=lambda m: None).run()
    second = Comparison(small_config(finetuners=[]), tmp_path, log=lambda m: None).run()
    assert all(e["computed_now"] == 0 for e in second["extraction"])
    assert [e["first_run_seconds"] for e in second["extraction"]] == [e["first_run_seconds"] for e in first["extraction"]]


def test_layer_sweep_table(fake_plugins, tmp_path):
    results = Comparison(small_config(embedders=[], finetuners=[], layer_sweep="pooled-layers",
                                      layer_sweep_poolings=["mean"]), tmp_path, log=lambda m: None).run()
    variants = {r["variant"] for r in results["layers"]}
    assert "weighted sum, all layers (layer-mix)" in variants and "last hidden" in variants
    text = write_report(results, tmp_path).read_text()
    assert "Layers x pooling" in text and "learned layer weights" in text


def test_unrunnable_embedders_are_listed_not_fatal(fake_plugins, tmp_path):
    results = Comparison(small_config(embedders=["word-stats:fail_on=a", "nope"], finetuners=[], heads=["logreg"]),
                         tmp_path, log=lambda m: None).run()
    whats = {s["what"] for s in results["skipped"]}
    assert whats == {"word-stats[fail_on=a]", "nope"}
    assert "## Not run" in write_report(results, tmp_path).read_text()


def test_cli(fake_plugins, tmp_path):
    from embedx.cli import app

    result = CliRunner().invoke(app, ["bench", "compare", "--out", str(tmp_path), "--datasets", "sms-spam",
                                      "-e", "word-stats", "--heads", "logreg", "--no-finetune", "--seeds", "0",
                                      "--samples-per-class", "40", "--layer-sweep", "none"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.md").exists() and "word-stats" in result.output
