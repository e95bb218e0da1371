"""`embedx bench compare` on real data at a tiny size: results, report, plots, cache reuse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
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
                         finetune_seeds=[0], samples_per_class=60, finetune_samples_per_class=30, layer_sweep=None,
                         selection="validation")
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def test_compare_runs_heads_and_finetuning_and_writes_a_report(fake_plugins, tmp_path):
    results = Comparison(small_config(selection="cv", heads=["logreg"]), tmp_path, log=lambda m: None).run()
    rows = results["rows"]
    heads = {(r["features"], r["head"]) for r in rows}
    assert ("hashing-ngrams[dim=256]", "logreg") in heads and ("word-stats", "logreg") in heads
    assert ("char-count-tuner", "fine-tune") in heads
    assert ("layered", "logreg") in heads  # a per-layer document output is flattened for plain heads
    assert len([r for r in rows if r["head"] == "logreg"]) == 3 * 2  # 3 embedders x 2 seeds
    tuned = [r for r in rows if r["head"] == "fine-tune"][0]
    assert tuned["n_train"] == 60 and tuned["peak_rss_mb"] > 0 and tuned["cpu_seconds"] > 0  # the worker's CPU
    assert 0.5 < tuned["test"]["accuracy"] <= 1
    table = aggregate(results)["sms-spam"]
    assert all(r["seeds"] == 2 for r in table if r["head"] != "fine-tune")
    logreg = [r for r in rows if r["head"] == "logreg"]
    sizes = results["splits"]["sms-spam"]["sizes"]
    assert all("5-fold cross-validation" in r["method"]
               and r["n_train"] == sizes[str(r["seed"])]["train"] + sizes[str(r["seed"])]["validation"] for r in logreg)
    report = write_report(results, tmp_path)
    text = report.read_text()
    assert "| features | head | test accuracy" in text and "char-count-tuner" in text
    assert "## How the numbers were obtained" in text and "refit on all train+validation" in text
    assert "| hashing-ngrams | logreg |" in text and "`hashing-ngrams[dim=256]`" in text  # short label + full spec
    assert (tmp_path / "cost-sms-spam.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "results.json").read_text())["config"]["seeds"] == [0, 1]


def test_frontier_labels_never_overlap(tmp_path):
    """Twenty results crowded at nearly one cost and accuracy: the frontier labels are moved apart."""
    from embedx.bench.plots import cost_plot, pareto

    rows = [{"features": f"embedder-{i}", "head": "logreg", "test_accuracy": 0.80 + 0.001 * i,
             "test_accuracy_std": 0.0, "extract_seconds": 1.0 + 0.01 * i, "train_seconds": 0.0} for i in range(20)]
    assert pareto([(1.0, 0.5), (2.0, 0.4), (3.0, 0.6), (0.5, 0.1)]) == [3, 0, 2]
    boxes = cost_plot(rows, "crowded", tmp_path / "c.png", {}, {})
    assert len(boxes) == 20  # every point is on the frontier here
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    family, head, key = boxes.panels  # a long frontier key stays clear of the legends above it
    assert not family.overlaps(head) and not head.overlaps(key) and not family.overlaps(key)
    assert key.y1 <= head.y0 <= head.y1 <= family.y0


def test_learning_curves_get_one_panel_per_family(fake_plugins, tmp_path):
    results = Comparison(small_config(heads=["dense"], finetuners=[]), tmp_path, log=lambda m: None).run()
    results["families"] = {"hashing-ngrams[dim=256]": "core", "word-stats": "fakes", "layered": "fakes"}
    write_report(results, tmp_path)
    import matplotlib.image

    height, width = matplotlib.image.imread(tmp_path / "curves-sms-spam.png").shape[:2]
    assert width > 1.5 * height  # two panels side by side


def test_each_fine_tuner_draws_one_learning_curve_whatever_its_seeds(fake_plugins, tmp_path):
    results = Comparison(small_config(embedders=[], finetune_seeds=[0, 1]), tmp_path, log=lambda m: None).run()
    assert len([r for r in results["rows"] if r["head"] == "fine-tune"]) == 2
    assert len([c for c in results["curves"] if c["head"] == "fine-tune"]) == 1


def test_a_run_on_other_seeds_does_not_add_a_second_curve_when_replayed(fake_plugins, tmp_path):
    """A side run with --seeds 1 / --finetune-seeds 1 journals its curves; the main run shows seed 0's only."""
    side = small_config(embedders=["word-stats"], heads=["dense"], seeds=[1], finetune_seeds=[1])
    Comparison(side, tmp_path, log=lambda m: None).run()
    main = Comparison(small_config(embedders=["word-stats"], heads=["dense"], seeds=[0, 1], finetune_seeds=[0, 1]),
                      tmp_path, log=lambda m: None).run()
    assert main["resumed_units"] == 2  # seed 1's head fit and fine-tuning run came from the journal
    curves = [(c["head"], c["seed"]) for c in main["curves"]]
    assert sorted(curves) == [("dense", 0), ("fine-tune", 0)]


def test_second_run_recomputes_nothing_and_keeps_first_extraction_time(fake_plugins, tmp_path):
    first = Comparison(small_config(finetuners=[]), tmp_path, log=lambda m: None).run()
    second = Comparison(small_config(finetuners=[]), tmp_path, log=lambda m: None).run()
    assert all(e["computed_now"] == 0 for e in second["extraction"])
    assert [e["first_run_seconds"] for e in second["extraction"]] == [
        e["first_run_seconds"] for e in first["extraction"]
    ]


def test_layer_sweep_table(fake_plugins, tmp_path):
    results = Comparison(small_config(embedders=[], finetuners=[], layer_sweep="pooled-layers",
                                      layer_sweep_poolings=["mean", "last"]), tmp_path, log=lambda m: None).run()
    assert {r["pooling"] for r in results["layers"]} == {"mean"}  # "last" is not among its declared poolings
    variants = {r["variant"] for r in results["layers"]}
    assert "weighted sum, all layers (layer-mix)" in variants and "last hidden" in variants
    assert {r["embedder"] for r in results["layers"]} == {"pooled-layers"}
    text = write_report(results, tmp_path).read_text()
    assert "Layers x pooling, pooled-layers" in text and "learned layer weights" in text


def test_a_per_layer_document_output_gets_a_layer_mix_row(fake_plugins, tmp_path):
    """ELMo's case: heads on the default vector, and the layer-mix head on the frozen layers (one extraction)."""
    results = Comparison(small_config(embedders=["mean-and-layers"], finetuners=[]), tmp_path, log=lambda m: None).run()
    heads = [r["head"] for r in results["rows"]]
    assert heads.count("logreg") == heads.count("dense") == heads.count("layer-mix") == 2
    mixes = [r for r in results["rows"] if r["head"] == "layer-mix"]
    assert all(len(r["extra"]["layer_weights"]) == 3 and abs(sum(r["extra"]["layer_weights"]) - 1) < 1e-3
               for r in mixes)
    assert len(results["extraction"]) == 2 and results["extraction"][1]["computed_now"] == 0  # read from the cache
    text = write_report(results, tmp_path).read_text()
    assert "| mean-and-layers | layer-mix |" in text and "layer-mix weights learned on mean-and-layers" in text


def test_layer_sweep_auto_takes_every_embedder_that_declares_layers(fake_plugins, tmp_path):
    from embedx.bench.runner import layer_sweep_ids
    from embedx.registry import get_registry

    registry = get_registry()
    ids = layer_sweep_ids("auto", registry)
    assert "pooled-layers" in ids  # declares layer_options and runs here with its defaults
    assert all(registry.embedders[i].cls.layer_options for i in ids)
    assert "hashing-ngrams" not in ids and layer_sweep_ids("a, b", registry) == ["a", "b"]
    assert layer_sweep_ids(None, registry) == []


def test_unrunnable_embedders_are_listed_not_fatal(fake_plugins, tmp_path):
    results = Comparison(small_config(embedders=["word-stats:fail_on=a", "nope"], finetuners=[], heads=["logreg"]),
                         tmp_path, log=lambda m: None).run()
    whats = {s["what"] for s in results["skipped"]}
    assert whats == {"word-stats[fail_on=a]", "nope"}
    assert "## Not run" in write_report(results, tmp_path).read_text()


def test_a_fine_tuner_that_cannot_run_is_listed_with_its_reason_not_a_traceback(fake_plugins, tmp_path):
    results = Comparison(small_config(embedders=[], finetuners=["char-count-tuner:epochs=many"]), tmp_path,
                         log=lambda m: None).run()
    [skipped] = results["skipped"]
    assert skipped["what"] == "char-count-tuner[epochs=many]"
    assert "cannot run here" in skipped["why"] and "epochs" in skipped["why"] and "Traceback" not in skipped["why"]
    assert "File " not in skipped["why"]


def test_cli(fake_plugins, tmp_path):
    from embedx.cli import app

    result = CliRunner().invoke(app, ["bench", "compare", "--out", str(tmp_path), "--datasets", "sms-spam",
                                      "-e", "word-stats", "--heads", "logreg", "--no-finetune", "--seeds", "0",
                                      "--samples-per-class", "40", "--layer-sweep", "none"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.md").exists() and "word-stats" in result.output


class SimulatedCrash(Exception):
    pass


def _test_accuracies(results: dict) -> list:
    return [(r["features"], r["head"], r["seed"], r["test"]["accuracy"]) for r in results["rows"]]


def test_an_interrupted_run_resumes_from_its_journal_and_ends_as_an_uninterrupted_one(fake_plugins, tmp_path,
                                                                                      monkeypatch):
    """A crash part-way (here on the 4th head fit) loses only the unit it was in; the rerun does the rest."""
    config = small_config(heads=["logreg", "dense"])
    whole = Comparison(config, tmp_path / "whole", log=lambda m: None).run()
    real_fit, fits, crash = Comparison._fit_head, [], [True]

    def crashing_fit(self, *args, **kwargs):
        fits.append(args[:2])
        if len(fits) == 4 and crash.pop():
            raise SimulatedCrash
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Comparison, "_fit_head", crashing_fit)
    with pytest.raises(SimulatedCrash):
        Comparison(config, tmp_path / "resumed", log=lambda m: None).run()
    crash.append(False)
    journal = tmp_path / "resumed" / "journal.jsonl"
    assert len(journal.read_text().splitlines()) == 3
    with open(journal, "a") as fh:  # a line the crash cut short: ignored, that unit runs again
        fh.write('{"key": "abc", "rows": [{"dataset"')
    fits.clear()
    resumed = Comparison(config, tmp_path / "resumed", log=lambda m: None).run()
    heads_total = len([r for r in whole["rows"] if r["head"] != "fine-tune"])
    assert len(fits) == heads_total - 3 and resumed["resumed_units"] == 3
    assert _test_accuracies(resumed) == _test_accuracies(whole)
    assert "resumed 3 finished head fits" in write_report(resumed, tmp_path / "resumed").read_text()

    fits.clear()  # everything journalled now, fine-tuning included: nothing runs
    again = Comparison(config, tmp_path / "resumed", log=lambda m: None).run()
    assert fits == [] and _test_accuracies(again) == _test_accuracies(whole)
    assert [c["what"] for c in again["curves"]] == [c["what"] for c in whole["curves"]]


def test_a_changed_setting_or_restart_recomputes_the_units(fake_plugins, tmp_path, monkeypatch):
    config = small_config(heads=["logreg"], finetuners=[], embedders=["word-stats"])
    Comparison(config, tmp_path, log=lambda m: None).run()
    real_fit, fits = Comparison._fit_head, []
    monkeypatch.setattr(Comparison, "_fit_head", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k))
    Comparison(small_config(heads=["logreg"], finetuners=[], embedders=["word-stats"], samples_per_class=50),
               tmp_path, log=lambda m: None).run()
    assert len(fits) == 2  # a different sample size: different rows, so both seeds ran
    fits.clear()
    Comparison(config, tmp_path, log=lambda m: None, resume=False).run()
    assert len(fits) == 2


def test_a_fine_tuner_that_cannot_run_is_not_journalled(fake_plugins, tmp_path):
    config = small_config(embedders=[], finetuners=["char-count-tuner:epochs=many"])
    Comparison(config, tmp_path, log=lambda m: None).run()
    again = Comparison(config, tmp_path, log=lambda m: None).run()
    assert len(again["skipped"]) == 1 and again["resumed_units"] == 0


def test_compare_runs_on_a_labelled_file_with_its_own_split(fake_plugins, tmp_path):
    """A user's corpus (here SMS spam written out as CSV) keeps its test rows; the report says so."""
    import csv

    from embedx import datasets

    sms = datasets.load("sms-spam", fetch=True)
    first = {" ".join(t.split()): i for i, t in reversed(list(enumerate(sms.texts)))}  # each text once: a file's
    unique = np.array(sorted(first.values()))  # own split may not give one text in train and in test
    picked = np.concatenate([unique[sms.label_ids[unique] == c][:90] for c in (0, 1)])
    path = tmp_path / "my corpus.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["body", "class", "part"])
        for n, i in enumerate(picked):
            writer.writerow([sms.texts[i], sms.labels[i], "test" if n % 3 == 0 else "train"])
    config = small_config(datasets=[str(path)], embedders=["hashing-ngrams:dim=256"], heads=["logreg"],
                          finetuners=[], text_column="body", label_column="class", split_column="part")
    results = Comparison(config, tmp_path / "out", log=lambda m: None).run()
    assert results["given_splits"][str(path)] == {"column": "part", "train": 98, "validation": 22, "test": 60}
    assert {r["dataset"] for r in results["rows"]} == {str(path)} and len(results["rows"]) == 2
    text = write_report(results, tmp_path / "out").read_text()
    assert "keeps its own split (column `part`): 60 test rows as given" in text

    path.write_text(path.read_text().replace("train", "training", 1))  # same rows, another digest: recomputed
    again = Comparison(config, tmp_path / "out", log=lambda m: None).run()
    assert again["resumed_units"] == 0


def test_compare_refuses_a_split_column_for_a_registered_dataset(fake_plugins, tmp_path):
    from embedx.contract.errors import EmbedxError

    with pytest.raises(EmbedxError, match="--split-column part: dataset 'sms-spam' is a registered one"):
        Comparison(small_config(split_column="part"), tmp_path, log=lambda m: None).run()


def test_cli_takes_a_labelled_file_and_its_split_column(fake_plugins, tmp_path):
    from embedx.cli import app

    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps({"text": f"{w} {i}", "y": w, "split": "test" if i % 4 == 0 else "train"}) + "\n"
                            for i in range(40) for w in ("spam", "ham")))
    result = CliRunner().invoke(app, ["bench", "compare", "--out", str(tmp_path / "out"), "--datasets", str(path),
                                      "-e", "word-stats", "--heads", "logreg", "--no-finetune", "--seeds", "0",
                                      "--label-column", "y", "--split-column", "split", "--layer-sweep", "none"])
    assert result.exit_code == 0, result.output
    assert "keeps its own split (column `split`): 20 test rows as given" in result.output
    missing = CliRunner().invoke(app, ["bench", "compare", "--out", str(tmp_path / "out"), "--datasets",
                                       str(tmp_path / "absent.csv"), "--no-finetune", "--layer-sweep", "none"])
    assert missing.exit_code != 0 and "absent.csv: no such input file" in missing.output


def test_a_labelled_file_with_one_label_or_bad_bytes_is_refused_before_any_work(fake_plugins, tmp_path):
    from embedx.cli import app

    (tmp_path / "one.csv").write_text("text,label\nhello,a\nthere,a\n")
    (tmp_path / "bytes.csv").write_bytes(b"text,label\nhello \xff there,a\nfine,b\n")
    common = ["bench", "compare", "--out", str(tmp_path / "out"), "-e", "word-stats", "--heads", "logreg",
              "--no-finetune", "--seeds", "0", "--layer-sweep", "none", "--datasets"]
    one = CliRunner().invoke(app, [*common, str(tmp_path / "one.csv")])
    assert one.exit_code != 0 and "one.csv: column 'label' holds one label ('a'); a comparison needs two" in one.output
    assert not (tmp_path / "out" / "features.h5").exists()
    strict = CliRunner().invoke(app, [*common, str(tmp_path / "bytes.csv")])
    assert strict.exit_code != 0 and "bytes.csv, line 2: invalid UTF-8" in strict.output
    replaced = CliRunner().invoke(app, [*common, str(tmp_path / "bytes.csv"), "--encoding-errors", "replace",
                                        "--samples-per-class", "1", "--selection", "validation"])
    assert "invalid UTF-8" not in replaced.output and "Traceback" not in replaced.output
    # one text per class cannot give a test part: one line naming each class's size, before any extraction
    assert replaced.exit_code == 2 and "no rows fell in the test part for seed 0" in replaced.output
    assert "class 'a' has 1 row(s), class 'b' has 1 row(s)" in replaced.output


def test_classes_too_small_for_a_test_part_are_one_line_not_a_reshape_traceback(fake_plugins, tmp_path):
    from embedx.cli import app

    (tmp_path / "small.csv").write_text("text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(8)))
    result = CliRunner().invoke(app, ["bench", "compare", "--out", str(tmp_path / "out"), "-e", "word-stats",
                                      "--heads", "logreg", "--no-finetune", "--seeds", "0", "--layer-sweep", "none",
                                      "--datasets", str(tmp_path / "small.csv")])
    assert result.exit_code == 2 and "Traceback" not in result.output and "reshape" not in result.output
    assert "no rows fell in the test part" in result.output and "class 'a' has 4 row(s)" in result.output


def test_runs_on_different_datasets_merge_into_one_report_naming_each_run(fake_plugins, tmp_path):
    """A comparison run as parts reports like one run, with each part's datasets and wall time in the header."""
    from embedx.cli import app

    config = small_config(heads=["logreg"], finetuners=[], seeds=[0])
    sms = Comparison(config, tmp_path / "sms", log=lambda m: None).run()
    config.datasets = ["tweets"]
    tweets = Comparison(config, tmp_path / "tweets", log=lambda m: None).run()
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "report",
            str(tmp_path / "sms"),
            str(tmp_path / "tweets" / "results.json"),
            "--out",
            str(tmp_path / "merged"),
        ],
    )
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert merged["config"]["datasets"] == ["sms-spam", "tweets"]
    assert _test_accuracies(merged) == _test_accuracies(sms) + _test_accuracies(tweets)
    text = (tmp_path / "merged" / "report.md").read_text()
    assert "Merged from 2 runs" in text and f"- tweets: `{tmp_path / 'tweets' / 'results.json'}`" in text
    alone = write_report(tweets, tmp_path / "tweets").read_text()
    assert alone.split("## tweets")[1].split("![")[0] == text.split("## tweets")[1].split("![")[0]
    assert (tmp_path / "merged" / "cost-tweets.png").exists() and (tmp_path / "merged" / "cost-sms-spam.png").exists()


def test_merging_refuses_repeated_datasets_other_protocols_and_foreign_files(tmp_path):
    from embedx.bench.merge import load_results, merge_results
    from embedx.contract.errors import EmbedxError

    def part(datasets, seeds=(0,)):
        return {"config": {"datasets": datasets, "seeds": list(seeds)}, "machine": {"cpus": 2, "python": "3.11"},
                **{k: [] for k in ("rows", "curves", "layers", "skipped", "extraction")}}

    with pytest.raises(EmbedxError, match="'mr' is also in a.json"):
        merge_results([("a.json", part(["mr"])), ("b.json", part(["tweets", "mr"]))])
    with pytest.raises(EmbedxError, match=r"b.json: seeds is \[0, 1\] but a.json has \[0\]"):
        merge_results([("a.json", part(["mr"])), ("b.json", part(["trec"], seeds=(0, 1)))])
    for name, content in [
        ("bad.json", b"{not json"),
        ("list.json", b"[1, 2]"),
        ("other.json", b'{"config": {}}'),
        ("bytes.json", b"\xff\xfe\x00"),
        ("rows.json", json.dumps({**part(["mr"]), "rows": {}}).encode()),
    ]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(EmbedxError, match=name):
            load_results(tmp_path / name)
    with pytest.raises(EmbedxError, match="no such results file"):
        load_results(tmp_path / "missing")


def test_a_model_changed_behind_the_same_spec_is_not_answered_from_the_journal(fake_plugins, tmp_path, monkeypatch):
    """The journal keys a head fit by the features' set (the embedder's whole identity, model digests included)."""
    from fakes import WordStats

    config = small_config(heads=["logreg"], finetuners=[], embedders=["word-stats"])
    Comparison(config, tmp_path, log=lambda m: None).run()
    real_fit, fits = Comparison._fit_head, []
    monkeypatch.setattr(Comparison, "_fit_head", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k))
    Comparison(config, tmp_path, log=lambda m: None).run()
    assert fits == []  # same model: resumed
    monkeypatch.setattr(WordStats, "identity", lambda self: {"model_sha256": "retrained"})
    Comparison(config, tmp_path, log=lambda m: None).run()
    assert len(fits) == 2  # same spec label, new model content: both seeds ran again


def test_a_finetuners_default_model_retrained_in_place_is_fine_tuned_again(fake_plugins, tmp_path, monkeypatch):
    """A model the fine-tuner finds without an option (``FineTuner.model_paths``) keys the journal by its content."""
    from fakes import CharCountTuner

    model = tmp_path / "default-model.bin"
    model.write_bytes(b"v1")
    monkeypatch.setattr(
        CharCountTuner, "model_paths", classmethod(lambda cls, options: {**options, "model": str(model)})
    )
    config = small_config(embedders=[], finetuners=["char-count-tuner"])
    Comparison(config, tmp_path / "out", log=lambda m: None).run()
    real_run, runs = Comparison._finetune_one, []
    monkeypatch.setattr(Comparison, "_finetune_one", lambda self, *a, **k: runs.append(1) or real_run(self, *a, **k))
    Comparison(config, tmp_path / "out", log=lambda m: None).run()
    assert runs == []  # same model content: resumed
    model.write_bytes(b"v2")
    os.utime(model, ns=(1, 1))
    Comparison(config, tmp_path / "out", log=lambda m: None).run()
    assert len(runs) == len(config.finetune_seeds)  # no option changed, the model did: every seed ran again


def test_a_finetuners_changed_default_is_fine_tuned_again(fake_plugins, tmp_path, monkeypatch):
    """The journal keys a fine-tuning run by every setting it runs with, its class's defaults included:
    a release that changes a default (a longer max_length, more epochs) never reuses a run made without it."""
    from fakes import CharCountTuner

    config = small_config(embedders=[], finetuners=["char-count-tuner"])
    Comparison(config, tmp_path / "out", log=lambda m: None).run()
    real_run, runs = Comparison._finetune_one, []
    monkeypatch.setattr(Comparison, "_finetune_one", lambda self, *a, **k: runs.append(1) or real_run(self, *a, **k))
    Comparison(config, tmp_path / "out", log=lambda m: None).run()
    assert runs == []  # same settings: resumed
    monkeypatch.setattr(CharCountTuner.__init__, "__defaults__", (150, 0.5))  # epochs 200 -> 150
    Comparison(config, tmp_path / "out", log=lambda m: None).run()
    assert len(runs) == len(config.finetune_seeds)


def test_path_digests_follow_file_and_folder_content_not_names(tmp_path):
    from embedx.files.digests import path_digests

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"v1")
    (tmp_path / "lm.pt").write_bytes(b"v1")
    options = {"handle": str(tmp_path / "model"), "forward": str(tmp_path / "lm.pt"), "epochs": 3, "name": "x"}
    first = path_digests(options)
    assert set(first) == {"handle", "forward"}
    (tmp_path / "model" / "weights.bin").write_bytes(b"v2")
    os.utime(tmp_path / "model" / "weights.bin", ns=(1, 1))
    second = path_digests(options)
    assert second["handle"] != first["handle"] and second["forward"] == first["forward"]
    (tmp_path / "model" / "extra.txt").write_bytes(b"")
    assert path_digests(options)["handle"] != second["handle"]


def test_no_finetune_and_one_seed_leave_no_fine_tuning_line_and_no_spread(fake_plugins, tmp_path):
    config = small_config(embedders=["hashing-ngrams:dim=256"], heads=["logreg"], finetuners=[], seeds=[0],
                          finetune_seeds=[0, 1, 2])
    results = Comparison(config, tmp_path, log=lambda m: None).run()
    sizes = results["splits"]["sms-spam"]["sizes"]
    assert list(sizes) == ["0"]  # the fine-tuning seeds were not even split
    assert results["extraction"][0]["texts"] == sum(sizes["0"].values())  # only the rows seed 0's heads use
    text = write_report(results, tmp_path).read_text()
    assert "fine-tun" not in text.lower() and "±" not in text
    assert "One seed: no spread to show." in text
    assert "dealt 70% / 15% / 15%" not in text.split("## How the numbers were obtained")[0]
    assert ("- **sms-spam**: per seed, each class shuffled and its first 60 texts dealt 70% / 15% / 15% into "
            "train / validation / test") in text
    assert f"Seed 0: {sizes['0']['train']:,} train, {sizes['0']['validation']:,} validation" in text
    row = results["rows"][0]
    assert row["cpu_seconds"] >= 0 and np.asarray(row["confusion"]).sum() == sizes["0"]["test"]
    assert results["extraction"][0]["first_run_cpu_seconds"] > 0
    assert "The plot's cost axis is **CPU seconds**" in text and "| CPU s |" in text
    assert "![confusion matrices, sms-spam](confusion-sms-spam.png)" in text
    grouping = results["splits"]["sms-spam"]["grouping"]["0"]  # Splits.report() of seed 0
    assert grouping["cross_split_texts"] == 0 and grouping["groups"] + grouping["duplicate_rows"] == grouping["rows"]
    assert f"{grouping['duplicate_rows']:,} duplicate rows, {grouping['groups']:,} distinct texts" in text
    assert (tmp_path / "confusion-sms-spam.png").stat().st_size > 5_000


def test_a_given_splits_validation_is_capped_like_its_train(fake_plugins, tmp_path):
    path = tmp_path / "given.jsonl"
    path.write_text("".join(json.dumps({"text": f"{w} {i}", "y": w, "split": "test" if i % 5 == 0 else "train"})
                            + "\n" for i in range(200) for w in ("spam", "ham")))
    config = small_config(datasets=[str(path)], embedders=["word-stats"], heads=["logreg"], finetuners=[],
                          seeds=[0], label_column="y", split_column="split", samples_per_class=70)
    results = Comparison(config, tmp_path / "out", log=lambda m: None).run()
    info = results["splits"][str(path)]
    assert info["kind"] == "given" and info["validation_cap"] == 15  # 70 x 15/70
    assert info["sizes"]["0"] == {"train": 140, "validation": 30, "test": 80}  # 24 per class carved, 15 kept
    text = write_report(results, tmp_path / "out").read_text()
    assert "keeps its own split (column `split`): 80 test rows as given" in text
    assert "train capped at 70 texts per class and validation at 15" in text


def test_an_old_results_file_reports_per_dataset_lines_and_wall_seconds(fake_plugins, tmp_path):
    """Results written before CPU seconds, split facts and confusion counts were recorded still make a report."""
    results = Comparison(small_config(embedders=["word-stats"], heads=["logreg"], finetuners=[]), tmp_path,
                         log=lambda m: None).run()
    for key in ("splits", "classes", "finetuners"):
        results.pop(key)
    for row in results["rows"]:
        row.pop("cpu_seconds"), row.pop("confusion")
    text = write_report(results, tmp_path).read_text()
    assert "- **sms-spam**: per seed, each class shuffled and its first 60 texts dealt" in text
    assert "The plot's cost axis is **wall-clock seconds**" in text and "confusion" not in text


def test_an_embedders_colour_is_fixed_by_its_name_across_reports(tmp_path):
    from embedx.bench.plots import EMBEDDER_PALETTE, _slot, cost_plot, embedder_colours

    def rows(names):
        return [{"features": n, "head": "logreg", "test_accuracy": 0.8 + 0.01 * i, "test_accuracy_std": 0.01,
                 "seeds": 3, "extract_seconds": 1.0 + i, "train_seconds": 1.0} for i, n in enumerate(names)]

    first = cost_plot(rows(["glove-6b-50d", "minilm-l6", "hashing-ngrams"]), "a", tmp_path / "a.png", {}, {})
    second = cost_plot(rows(["word-stats", "minilm-l6", "elmo", "glove-6b-50d"]), "b", tmp_path / "b.png", {}, {})
    for name in ("glove-6b-50d", "minilm-l6"):
        assert first.colours[name] == second.colours[name]
    lone = embedder_colours(["minilm-l6"])["minilm-l6"]
    assert lone == EMBEDDER_PALETTE[_slot("minilm-l6")] == first.colours["minilm-l6"]
    many = [f"embedder-{i}" for i in range(len(EMBEDDER_PALETTE))]
    assert len({_slot(n) for n in many}) < len(many)  # some of these names hash to one slot...
    assert len(set(embedder_colours(many).values())) == len(many)  # ...yet no two share a colour


@pytest.mark.parametrize("costs", [(20.0, 90.0), (45.0, 48.0), (0.3, 0.5), (2.0, 3000.0)])
def test_the_cost_axis_has_three_or_more_plain_ticks(tmp_path, costs):
    import re

    from embedx.bench.plots import cost_plot

    rows = [{"features": f"e{i}", "head": "logreg", "test_accuracy": 0.7 + 0.1 * i, "test_accuracy_std": 0.0,
             "seeds": 1, "extract_seconds": cost, "train_seconds": 0.0} for i, cost in enumerate(costs)]
    plot = cost_plot(rows, "ticks", tmp_path / "t.png", {}, {})
    assert len(plot.ticks) >= 3 and all(re.fullmatch(r"[0-9][0-9,]*(\.[0-9]+)?", t) for t in plot.ticks), plot.ticks


def test_the_split_line_states_how_repeated_texts_were_kept():
    from embedx.bench.report import _split_lines

    grouping = {"duplicates": "group", "rows": 120, "groups": 110, "duplicate_rows": 10, "conflicting_texts": 2,
                "conflicting_rows": 4, "cross_split_texts": 0, "drift": {"test": 0.02}, "drift_max": 0.02,
                "warnings": ["class 'x' has 1 row: too few for a test part"]}
    splits = {"sms-spam": {"kind": "dealt", "fractions": [0.7, 0.15, 0.15], "cap": 60,
                           "sizes": {"0": {"train": 84, "validation": 18, "test": 18}},
                           "grouping": {"0": grouping, "1": {**grouping, "drift_max": 0.03}}}}
    lines = _split_lines({"samples_per_class": 60, "max_tokens": 100, "datasets": ["sms-spam"]}, {"splits": splits})
    assert lines[0] == "- **Texts** are cut to 100 tokens before splitting."
    line = lines[1]
    assert "Seed 0: 84 train, 18 validation, 18 test rows." in line
    assert ("10 duplicate rows, 110 distinct texts, each text's rows on one side; 2 texts with conflicting labels; "
            "0 texts in more than one part; class shares off their exact ones by at most 3.0 points") in line
    assert "⚠ class 'x' has 1 row: too few for a test part" in line


def test_cross_validation_folds_keep_each_texts_rows_together(fake_plugins, tmp_path, monkeypatch):
    """The bench's CV folds group rows by content key, as its splits do (a repeated text never crosses folds)."""
    from embedx.heads import selection

    path = tmp_path / "repeats.csv"
    rows = [f"message {i % 30},{'ab'[(i % 30) % 2]}" for i in range(90)]  # every text three times
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    seen = []
    real = selection.choose_and_fit

    def spy(*args, **kwargs):
        seen.append(args[-1] if len(args) > 7 else kwargs.get("groups"))
        return real(*args, **kwargs)

    monkeypatch.setattr(selection, "choose_and_fit", spy)
    config = small_config(datasets=[str(path)], embedders=["word-stats"], heads=["logreg"], finetuners=[],
                          seeds=[0], selection="cv", folds=3, samples_per_class=None)
    Comparison(config, tmp_path / "out", log=lambda m: None).run()
    assert seen and all(groups is not None for groups in seen)
    groups = np.asarray(seen[0])
    assert len(np.unique(groups)) == 30 and len(groups) == 90
