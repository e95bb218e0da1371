"""`embedx predict --file` reads .csv / .tsv / .jsonl like `extract`, writes one row per text, scores labelled files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx.cli import app
from embedx.heads.predict_files import confusion, read_input, score_file
from embedx.heads.selection import Protocol
from embedx.heads.training import SplitSpec, train

SPAM = ["win free cash now", "free prize offer", "cash prize win now", "claim your free offer"]
HAM = ["see you at lunch", "meeting at noon tomorrow", "call me when you are home", "lunch tomorrow then"]


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Path:
    """A logistic regression head on hashed n-grams of spam-like and ham-like texts (a second to train)."""
    tmp = tmp_path_factory.mktemp("predict")
    texts = [f"{t} {i}" for i in range(6) for t in SPAM] + [f"{t} {i}" for i in range(6) for t in HAM]
    labels = ["spam"] * 24 + ["ham"] * 24
    store = tmp / "train.h5"
    embedx.extract(texts, "hashing-ngrams", store, name="t", options={"dim": 64}, columns={"label": labels})
    out = tmp / "head"
    train("logreg", store, "hashing-ngrams", "label", split=SplitSpec(seed=0), save=out, options={"C": [10.0]},
          protocol=Protocol("validation"))
    return out


def _run(*args: str):
    return CliRunner().invoke(app, ["predict", *args])


def _labelled_csv(path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "message", "label"])
        for i, text in enumerate(SPAM):
            writer.writerow([f"s{i}", text, "spam"])
        for i, text in enumerate(HAM):
            writer.writerow([f"h{i}", text, "ham"])
        writer.writerow(["x0", "free lunch, see you", "eggs"])  # a class the head never saw
    return path


def test_a_labelled_csv_is_scored_and_every_row_written(head, tmp_path):
    data = _labelled_csv(tmp_path / "new.csv")
    out = tmp_path / "pred.csv"
    result = _run(str(head), "--file", str(data), "--text-column", "message", "--label-column", "label",
                  "--output", str(out), "--features", str(tmp_path / "f.h5"))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["line", "label", "given", "p(ham)", "p(spam)"]
    assert [int(r["line"]) for r in rows] == list(range(2, 11))  # line 1 is the header
    assert [r["given"] for r in rows] == ["spam"] * 4 + ["ham"] * 4 + ["eggs"]
    for r in rows:
        p = float(r["p(ham)"]), float(r["p(spam)"])
        assert abs(sum(p) - 1) < 1e-5 and r["label"] == ("spam" if p[1] > p[0] else "ham")
    predicted = [r["label"] for r in rows[:8]]
    correct = sum(p == g for p, g in zip(predicted, ["spam"] * 4 + ["ham"] * 4, strict=True))
    assert f"scored 8 of 9 rows: accuracy {correct / 8:.4f}" in result.stdout
    assert "confusion matrix (rows: given label, columns: predicted)" in result.stdout
    assert "1 row(s) labelled 'eggs' (first at line 10): not a class of this head" in result.stdout
    assert "message" not in rows[0]["label"]  # the header is not classified


def test_json_gives_the_scores_and_the_confusion_matrix(head, tmp_path):
    data = _labelled_csv(tmp_path / "new.csv")
    result = _run(str(head), "--file", str(data), "--text-column", "message", "--label-column", "label", "--json",
                  "--features", str(tmp_path / "f.h5"))
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    scores = outcome["scores"]
    assert outcome["rows"] == 9 and scores["scored"] == 8 and scores["classes"] == ["ham", "spam"]
    assert np.asarray(scores["confusion"]).sum() == 8 and np.asarray(scores["confusion"]).sum(1).tolist() == [4, 4]
    assert scores["unknown_labels"] == {"eggs": {"rows": 1, "first_line": 10}}
    assert 0 <= scores["macro_f1"] <= 1 and set(scores["per_class"]) == {"ham", "spam"}


def test_tsv_and_jsonl_take_the_text_column_and_jsonl_output(head, tmp_path):
    tsv = tmp_path / "new.tsv"
    tsv.write_text("body\tkind\n" + "".join(f"{t}\tx\n" for t in SPAM[:2]), encoding="utf-8")
    jsonl = tmp_path / "new.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t, "n": i}) + "\n" for i, t in enumerate(HAM[:3])), encoding="utf-8")
    for data, n in ((tsv, 2), (jsonl, 3)):
        out = tmp_path / f"{data.stem}-{data.suffix[1:]}.jsonl"
        result = _run(str(head), "--file", str(data), "--text-column", "body", "--output", str(out),
                      "--features", str(tmp_path / "f.h5"))
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == n and all(set(r["probabilities"]) == {"ham", "spam"} for r in rows)
        assert [r["line"] for r in rows] == ([2, 3] if data is tsv else [1, 2, 3])
    result = _run(str(head), "--file", str(tsv), "--text-column", "body", "--features", str(tmp_path / "f.h5"))
    assert result.stdout.splitlines()[0] == "line\tlabel\ttext" and result.stdout.splitlines()[1].startswith("2\t")


@pytest.mark.parametrize("args, message", [
    (["--text-column", "body"], "no column 'body' (columns: id, message, label); choose one with --text-column"),
    (["--text-column", "message", "--label-column", "gold"], "no column 'gold'"),
])
def test_a_missing_column_is_one_line_naming_the_column_and_file(head, tmp_path, args, message):
    data = _labelled_csv(tmp_path / "new.csv")
    result = _run(str(head), "--file", str(data), *args, "--features", str(tmp_path / "f.h5"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and str(data) in errors[0]
    assert not (tmp_path / "f.h5").exists()  # refused before anything was embedded


def test_a_jsonl_row_without_its_label_names_the_line(tmp_path):
    data = tmp_path / "x.jsonl"
    data.write_text('{"text": "a", "y": "spam"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(embedx.contract.errors.InputError, match=r"x.jsonl, line 2: no field 'y'"):
        read_input(data, "text", "y")
    assert read_input(data, "text").texts == ["a", "b"]


def test_output_suffix_and_txt_labels_are_checked_before_any_work(head, tmp_path):
    data = tmp_path / "t.txt"
    data.write_text("win free cash\nsee you\n", encoding="utf-8")
    result = _run(str(head), "--file", str(data), "--output", str(tmp_path / "p.xlsx"))
    assert result.exit_code == 2 and "--output" in result.stderr and ".csv, .tsv or .jsonl" in result.stderr
    result = _run(str(head), "--file", str(data), "--label-column", "y")
    assert result.exit_code == 2 and "t.txt: a .txt file has one text per line and no columns" in result.stderr
    result = _run(str(head), "--file", str(data), "--output", str(data.with_suffix(".csv")), "--features",
                  str(tmp_path / "f.h5"))
    assert result.exit_code == 0 and len(data.with_suffix(".csv").read_text().splitlines()) == 3


def test_a_margin_head_writes_scores_not_probabilities(tmp_path):
    texts = [f"{t} {i}" for i in range(6) for t in SPAM] + [f"{t} {i}" for i in range(6) for t in HAM]
    store = tmp_path / "train.h5"
    embedx.extract(texts, "hashing-ngrams", store, name="t", options={"dim": 64},
                   columns={"label": ["spam"] * 24 + ["ham"] * 24})
    svm = tmp_path / "svm"
    train("linear-svm", store, "hashing-ngrams", "label", split=SplitSpec(seed=0), save=svm, options={"C": [1.0]},
          protocol=Protocol("validation"))
    data = tmp_path / "t.txt"
    data.write_text("win free cash\n", encoding="utf-8")
    out = tmp_path / "p.csv"
    result = _run(str(svm), "--file", str(data), "--output", str(out), "--features", str(tmp_path / "f.h5"))
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "line,label,score(ham),score(spam)"
    assert "gives scores, not probabilities" in result.stderr


def test_score_file_counts():
    result = score_file(["a", "b", "b", "c"], ["a", "a", "b", "a"], ["a", "b"], [1, 2, 3, 4])
    assert result["accuracy"] == pytest.approx(2 / 3) and result["confusion"] == [[1, 0], [1, 1]]
    assert result["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert result["unknown_labels"] == {"c": {"rows": 1, "first_line": 4}}
    assert confusion(np.array([0, 1, 1]), np.array([1, 1, 0]), 2).tolist() == [[0, 1], [1, 1]]
