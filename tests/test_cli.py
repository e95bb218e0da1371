"""The command line, end to end through typer, plus the guard that keeps it fast."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx.cli import app

runner = CliRunner()
HEAVY = {"torch", "tensorflow", "tensorflow_hub", "gensim", "flair", "transformers", "sklearn", "h5py"}


def test_help_imports_nothing_heavy():
    """`embedx --help`, with every installed plugin's commands added, loads no framework."""
    code = ("import sys\n"
            "sys.argv = ['embedx', '--help']\n"
            "import embedx.cli\n"
            "try:\n    embedx.cli.main()\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
            f"print('HEAVY', sorted(set({sorted(HEAVY)!r}) & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


@pytest.mark.parametrize("command", ["extract", "info", "export", "plugins", "embedders", "datasets",
                                     "datasets list", "datasets fetch", "datasets path"])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_extract_info_export_round_trip(registry, tmp_path):
    src = tmp_path / "reviews.csv"
    src.write_text("id,text,label\n1,good film,pos\n2,bad film,neg\n3,good film,pos\n")
    out = tmp_path / "f.h5"
    result = runner.invoke(app, ["extract", str(src), "-e", "word-stats", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["rows"], report["computed"], report["input_name"]) == (3, 2, "reviews")
    again = json.loads(runner.invoke(app, ["extract", str(src), "-e", "word-stats", "-o", str(out), "--json"]).output)
    assert again["computed"] == 0 and again["cached"] == 2

    info = json.loads(runner.invoke(app, ["info", str(out), "--json"]).output)
    assert info["sets"][0]["embedder"] == "word-stats" and info["inputs"]["reviews"]["columns"] == ["id", "label"]
    human = runner.invoke(app, ["info", str(out)])
    assert human.exit_code == 0 and "word-stats" in human.output

    for suffix in ("npy", "csv", "parquet"):
        target = tmp_path / f"x.{suffix}"
        res = runner.invoke(app, ["export", str(out), "-e", "word-stats", "-o", str(target)])
        assert res.exit_code == 0, res.output
    vectors = np.load(tmp_path / "x.npy")
    assert vectors.shape == (3, 4) and np.array_equal(vectors[0], vectors[2])
    header = (tmp_path / "x.csv").read_text().splitlines()[0]
    assert header.startswith("line,id,label,key,f0")  # one default layout for .csv and .parquet
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "x.parquet")
    assert table.column("label").to_pylist() == ["pos", "neg", "pos"]
    assert table.column_names[:4] == ["line", "id", "label", "key"]
    assert np.allclose(np.column_stack([table.column(f"f{i}").to_numpy() for i in range(4)]), vectors)


def test_stdin_and_options(registry, tmp_path):
    out = tmp_path / "f.h5"
    result = runner.invoke(app, ["extract", "-", "-e", "word-stats", "-o", str(out), "-O", "scale=5", "--json"],
                           input="one two\nthree\n")
    assert result.exit_code == 0, result.output
    with embedx.open_store(out) as store:
        assert store.input("stdin").texts == ["one two", "three"]
        assert store.feature_set("word-stats").vectors(input="stdin")[:, 3].tolist() == [5, 5]


def test_errors_are_one_clear_line(registry, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\n")
    result = runner.invoke(app, ["extract", str(bad), "-e", "word-stats", "-o", str(tmp_path / "f.h5")])
    assert result.exit_code == 2
    assert "bad.txt, line 2: invalid UTF-8" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["extract", str(bad), "-e", "word-stats", "-o", str(tmp_path / "f.h5"),
                                 "-O", "nonsense"])
    assert result.exit_code == 2 and "expected key=value" in result.output


def test_embedders_and_plugins_listings(registry):
    listing = json.loads(runner.invoke(app, ["embedders", "--json"]).output)
    stats = [r for r in listing if r["id"] == "word-stats"][0]
    assert stats["plugin"] == "fakes" and stats["level"] == "document / token" and stats["available"]
    assert [o["dim"] for o in stats["outputs"]] == [4, 2]
    verbose = runner.invoke(app, ["embedders", "-v"])
    assert "--option scale=<float>" in verbose.output
    plugins = json.loads(runner.invoke(app, ["plugins", "--json"]).output)
    assert {"hashing", "fakes"} <= {p["name"] for p in plugins}


def test_predict_prints_a_header_and_what_it_computed_and_reused(registry, tmp_path):
    texts = [f"good film number {i}" for i in range(12)] + [f"bad film number {i}" for i in range(12)]
    embedx.extract(texts, "hashing-ngrams", tmp_path / "f.h5", name="r", options={"dim": 64},
                   columns={"label": ["pos"] * 12 + ["neg"] * 12})
    trained = runner.invoke(app, ["train", "logreg", "-f", str(tmp_path / "f.h5"), "-e", "hashing-ngrams",
                                  "--labels", "label", "--save", str(tmp_path / "head")])
    assert trained.exit_code == 0, trained.output
    done = runner.invoke(app, ["predict", str(tmp_path / "head"), "--features", str(tmp_path / "f.h5"), "a good film",
                               texts[0], "--proba"])
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0] == "label\tp(neg)\tp(pos)\ttext" and lines[1].endswith("\ta good film") and len(lines) == 3
    assert "2 texts: 1 embedded now with hashing-ngrams, 1 reused from" in done.stderr


@pytest.mark.parametrize("width", [50, 80, 200])
def test_embedder_ids_are_never_cut(width):
    """The id is what a user must type: whole at any terminal width (other columns wrap)."""
    import os

    from embedx.plugin_api.testing import installed_registry

    expected = set(installed_registry(set(), "").embedders)
    done = subprocess.run([sys.executable, "-m", "embedx.cli", "embedders"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": str(width)}, check=True)
    shown = {line.split("│")[1].strip() for line in done.stdout.splitlines() if line.startswith("│")}
    assert expected <= shown, sorted(expected - shown)
