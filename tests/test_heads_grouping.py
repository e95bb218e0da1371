"""Heads that cannot cheat: repeated texts never cross a split or fold; small classes fail clearly; per-class output."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx import datasets
from embedx.cli import app
from embedx.datasets.grouping import deal
from embedx.heads.data import MemoryData
from embedx.heads.selection import Protocol, choose_and_fit, stratified_folds
from embedx.heads.training import build_head, train


def _repeating(n: int = 600, distinct: int = 250, seed: int = 0) -> datasets.Dataset:
    """Texts drawn with repetition (so most repeat), three classes, and some texts given two labels."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, distinct, n)
    texts = [f"text number {p}" for p in picks]
    labels = np.array(["a", "b", "c"])[picks % 3]
    flip = rng.choice(n, 12, replace=False)
    labels[flip] = np.array(["a", "b", "c"])[(picks[flip] + 1) % 3]  # the same text, another label
    return datasets.Dataset("repeating", texts, labels, [str(i) for i in range(n)], ("a", "b", "c"))


def _texts_by_part(splits: datasets.Splits) -> list[set[str]]:
    return [{splits.dataset.texts[i] for i in splits.indices(p).tolist()} for p in datasets.PARTS]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fractions, cap", [((0.7, 0.15, 0.15), None), ((0.8, 0.0, 0.2), None),
                                            ((0.5, 0.25, 0.25), 40)])
def test_no_split_ever_holds_one_text_on_two_sides(seed, fractions, cap):
    ds = _repeating(seed=seed)
    splits = datasets.split(ds, seed=seed, train=fractions[0], validation=fractions[1], test=fractions[2],
                            samples_per_class=cap)
    train_texts, val_texts, test_texts = _texts_by_part(splits)
    assert not (train_texts & test_texts or train_texts & val_texts or val_texts & test_texts)
    used = np.concatenate([splits.indices(p) for p in datasets.PARTS])
    assert len(used) == len(set(used.tolist()))
    counted = Counter(ds.texts[i] for i in used.tolist())
    labels_of: dict[str, set] = {}
    for i in used.tolist():
        labels_of.setdefault(ds.texts[i], set()).add(ds.labels[i])
    report = splits.report()
    assert report["rows"] == len(used) and report["groups"] == len(counted)
    assert report["duplicate_rows"] == len(used) - len(counted) > 0
    assert report["conflicting_texts"] == sum(len(v) > 1 for v in labels_of.values()) > 0
    assert report["conflicting_rows"] == sum(counted[t] for t, v in labels_of.items() if len(v) > 1)
    assert report["cross_split_texts"] == 0 and report["duplicates"] == "group"
    assert any("more than one label" in w for w in report["warnings"])
    if fractions[1] == 0:
        assert len(splits.validation) == 0
    if cap is not None:  # the cap counts texts, under each text's most frequent label
        def majority(text):  # ties go to the first class in label order
            votes = Counter(ds.labels[i] for i in used.tolist() if ds.texts[i] == text)
            return min(votes, key=lambda label: (-votes[label], ds.label_names.index(label)))

        kept = Counter(majority(t) for t in counted)
        assert max(kept.values()) <= cap


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_no_fold_ever_holds_one_text_in_two_folds(seed, k):
    ds = _repeating(seed=seed + 10)
    folds = stratified_folds(ds.label_ids, k, seed, np.asarray(ds.texts))
    fold_of: dict[str, set] = {}
    for text, fold in zip(ds.texts, folds.tolist(), strict=True):
        fold_of.setdefault(text, set()).add(fold)
    assert all(len(f) == 1 for f in fold_of.values())
    assert set(folds.tolist()) == set(range(k))


def test_cross_validation_keeps_texts_in_one_fold_through_choose_and_fit():
    ds = _repeating(n=300, distinct=120, seed=3)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(ds), 4)) + ds.label_ids[:, None]
    data = MemoryData(X.astype(np.float32), ds.label_ids, list(ds.label_names))
    splits = datasets.split(ds, seed=1)
    picked = choose_and_fit(lambda o: build_head("logreg", o), {"C": "0.1,1"}, {}, data, splits.train,
                            splits.validation, Protocol(seed=1), np.asarray(ds.texts))
    assert picked.folds is not None and "each text's rows in one fold" in picked.method
    texts = np.asarray(ds.texts)[picked.pool]
    for text in set(texts.tolist()):
        assert len(set(picked.folds[texts == text].tolist())) == 1
    assert picked.fold_drift is not None and picked.fold_drift < 0.1


@pytest.mark.parametrize("seed", range(5))
def test_stratification_drift_is_bounded_on_a_balanced_set(seed):
    """One row per text: each part within one row of its exact share of each class; pairs: within two."""
    n = 900
    labels = np.array(["x", "y", "z"])[np.arange(n) % 3]
    ds = datasets.Dataset("balanced", [f"unique {i}" for i in range(n)], labels, [str(i) for i in range(n)],
                          ("x", "y", "z"))
    splits = datasets.split(ds, seed=seed)
    for part, fraction in zip(datasets.PARTS, (0.7, 0.15, 0.15), strict=True):
        counts = Counter(ds.labels[splits.indices(part)].tolist())
        assert all(abs(counts[c] - fraction * 300) <= 1 for c in "xyz"), (part, counts)
    assert splits.grouping.drift_max <= 0.005 and splits.grouping.duplicate_rows == 0
    paired = ds.with_texts([f"pair {i // 2}" for i in range(n)])  # rows 2i and 2i+1: one text, two labels
    splits = datasets.split(paired, seed=seed)
    assert splits.grouping.groups == n // 2 and splits.grouping.conflicting_texts == n // 2
    for part, fraction in zip(datasets.PARTS, (0.7, 0.15, 0.15), strict=True):
        counts = Counter(paired.labels[splits.indices(part)].tolist())
        assert all(abs(counts[c] - fraction * 300) <= 2 for c in "xyz"), (part, counts)
    assert splits.grouping.drift_max < 0.02


def test_deal_gives_parts_of_fraction_zero_nothing():
    counts = np.array([[1, 0], [0, 1], [2, 1], [1, 0]] * 10)
    part = deal(counts, np.array([0.8, 0.0, 0.2]), np.arange(len(counts)))
    assert set(part.tolist()) == {0, 2}


def test_keep_deals_rows_one_by_one_and_counts_the_leak():
    ds = _repeating(seed=1)
    leaks = [datasets.split(ds, seed=s, duplicates="keep").grouping.cross_split_texts for s in range(3)]
    assert all(n > 0 for n in leaks)
    with pytest.raises(datasets.DatasetError, match="duplicates='nope'"):
        datasets.split(ds, duplicates="nope")  # type: ignore[arg-type]


# --- given splits: a text in two parts -------------------------------------------------------------------------

def _given_file(tmp_path, rows):
    path = tmp_path / "given.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        writer.writerows(rows)
    return path


def _given_rows(n=40):
    return [[f"{'good' if i % 2 else 'bad'} text {i}", "pos" if i % 2 else "neg", "test" if i >= n - 10 else "train"]
            for i in range(n)]


def test_a_file_giving_one_text_in_train_and_test_is_refused_naming_both_lines(tmp_path):
    rows = _given_rows()
    rows[35][0] = rows[3][0]  # line 5 (train) and line 37 (test): the header is line 1
    path = _given_file(tmp_path, rows)
    ds = datasets.from_file(path, split_field="split")
    with pytest.raises(datasets.DatasetError, match=r"line 5 \(train\) and line 37 \(test\)") as caught:
        datasets.split(ds)
    assert "--duplicates keep" in str(caught.value) and "given.csv" in str(caught.value)
    kept = datasets.split(ds, duplicates="keep")
    assert kept.grouping.cross_split_texts == 1 and kept.grouping.duplicate_rows == 1


def _features(tmp_path, rows, name="given.h5"):
    path = tmp_path / name
    embedx.extract([r[0] for r in rows], "hashing-ngrams", path, name="t", options={"dim": 32},
                   columns={"label": [r[1] for r in rows], "split": [r[2] for r in rows]})
    return path


def test_train_refuses_a_split_column_with_one_text_in_train_and_test_unless_keep(tmp_path):
    rows = _given_rows()
    rows[35][0] = rows[3][0]
    path = _features(tmp_path, rows)
    base = ["train", "logreg", "-f", str(path), "-e", "hashing-ngrams", "--labels", "label", "--split-column",
            "split", "-O", "C=1", "-O", "scale=false"]
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "line 4 (train) and line 36 (test)" in result.output  # lines of the texts given to extract
    result = CliRunner().invoke(app, [*base, "--duplicates", "keep", "--json"])
    assert result.exit_code == 0, result.output
    grouping = json.loads(result.output)["grouping"]
    assert grouping["cross_split_texts"] == 1 and grouping["duplicates"] == "keep"
    result = CliRunner().invoke(app, [*base, "--duplicates", "sometimes"])
    assert result.exit_code == 2 and "--duplicates='sometimes'" in result.output


# --- small and odd data sets ----------------------------------------------------------------------------------

def test_too_few_rows_per_class_is_one_clear_error(tmp_path):
    rows = [[f"{'good' if i % 2 else 'bad'} text {i}", "pos" if i % 2 else "neg", "train"] for i in range(8)]
    path = _features(tmp_path, rows, "small.h5")
    result = CliRunner().invoke(app, ["train", "logreg", "-f", str(path), "-e", "hashing-ngrams", "--labels",
                                      "label"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "no rows fell in the test part" in result.output and "class 'neg' has 4 text(s)" in result.output


def test_a_class_with_one_text_is_named_when_cross_validation_needs_two(tmp_path):
    rows = [[f"{'good' if i % 2 else 'bad'} text {i}", "pos" if i % 2 else "neg", "train"] for i in range(60)]
    rows.append(["a lonely odd text", "odd", "train"])
    path = _features(tmp_path, rows, "odd.h5")
    base = ["train", "logreg", "-f", str(path), "-e", "hashing-ngrams", "--labels", "label"]
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "class 'odd' has 1" in result.output
    result = CliRunner().invoke(app, [*base, "-O", "C=1", "-O", "scale=false", "--json"])  # nothing to choose
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.output)["warnings"]
    assert any("class 'odd' has 1 text(s)" in w and "none in validation or test" in w for w in warnings), warnings


def test_a_class_only_in_test_is_warned_about(tmp_path):
    rows = _given_rows(60)
    rows += [[f"grain report {i}", "grain", "test"] for i in range(3)]
    path = _features(tmp_path, rows, "grain.h5")
    base = ["train", "logreg", "-f", str(path), "-e", "hashing-ngrams", "--labels", "label", "--split-column",
            "split", "-O", "C=1", "-O", "scale=false"]
    result = CliRunner().invoke(app, [*base, "--json"])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    assert any("class 'grain' is in test (3 rows) but not in train" in w for w in outcome["warnings"])
    assert outcome["per_class"]["grain"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 0 and "warning:" in result.output and "'grain' is in test" in result.output


# --- per-class and per-row output; what selection chooses among ---------------------------------------------

@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = {"a": "apple apricot", "b": "banana berry", "c": "cherry citrus"}
    labels = ["a"] * 150 + ["b"] * 40 + ["c"] * 20
    texts = [f"{words[lab]} {' '.join(rng.choice(['x', 'y', 'z', 'w'], 3))} {i % 97}" for i, lab in enumerate(labels)]
    texts[:6] = texts[6:12]  # some repeats
    labels[:6] = labels[6:12]
    path = tmp_path_factory.mktemp("grouping") / "imb.h5"
    embedx.extract(texts, "hashing-ngrams", path, name="t", options={"dim": 64}, columns={"label": labels})
    return path


def test_save_writes_each_test_rows_prediction_and_probabilities(imbalanced, tmp_path):
    out = tmp_path / "head"
    outcome = train("logreg", imbalanced, "hashing-ngrams", "label", options={"C": "0.1,10"}, save=out)
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(out / "splits.csv", newline="") as handle:
        test_rows = [int(r["row"]) for r in csv.DictReader(handle) if r["split"] == "test"]
    assert [int(r["row"]) for r in rows] == sorted(test_rows) and len(rows) == outcome.sizes["test"]
    assert list(rows[0]) == ["row", "key", "label", "predicted", "p:a", "p:b", "p:c"]
    proba = np.array([[float(r[f"p:{c}"]) for c in "abc"] for r in rows])
    assert np.allclose(proba.sum(1), 1.0, atol=1e-4)
    assert [r["predicted"] for r in rows] == ["abc"[i] for i in proba.argmax(1)]
    assert np.mean([r["predicted"] == r["label"] for r in rows]) == pytest.approx(outcome.test["accuracy"])
    for c in "abc":
        mine = outcome.per_class[c]
        assert mine["support"] == sum(r["label"] == c for r in rows)
        hits = sum(r["label"] == c and r["predicted"] == c for r in rows)
        assert mine["recall"] == pytest.approx(hits / mine["support"])
    saved = json.loads((out / "head.json").read_text())["outcome"]
    assert saved["per_class"] == outcome.per_class and saved["grouping"]["duplicate_rows"] == 6


def test_scale_is_chosen_unless_fixed_and_metric_picks_macro_f1(imbalanced):
    chosen = train("logreg", imbalanced, "hashing-ngrams", "label", options={"C": "0.01,1"},
                   protocol=Protocol(metric="macro-f1"))
    assert sorted((g["options"]["scale"], g["options"]["C"]) for g in chosen.grid) == [
        (False, 0.01), (False, 1.0), (True, 0.01), (True, 1.0)]
    best = max(chosen.grid, key=lambda g: g["cv"]["macro_f1"])
    assert chosen.validation == best["cv"] and chosen.metric == "macro_f1" and "best mean macro-F1" in chosen.method
    assert chosen.chosen["scale"] == best["options"]["scale"]
    fixed = train("logreg", imbalanced, "hashing-ngrams", "label", options={"C": "0.01,1", "scale": "true"})
    assert all("scale" not in g["options"] for g in fixed.grid) and len(fixed.grid) == 2


def test_class_weight_balanced_is_a_grid_option(imbalanced):
    for head in ("logreg", "random-forest"):
        options = {"C": "1", "scale": "false"} if head == "logreg" else {"n_estimators": "10"}
        outcome = train(head, imbalanced, "hashing-ngrams", "label", options=options,
                        grid={"class_weight": ["none", "balanced"]})
        assert [g["options"]["class_weight"] for g in outcome.grid] == ["none", "balanced"]
    result = CliRunner().invoke(app, ["train", "logreg", "-f", str(imbalanced), "-e", "hashing-ngrams", "--labels",
                                      "label", "--metric", "recall"])
    assert result.exit_code == 2 and "--metric 'recall'" in result.output


def test_heads_listing_says_scaling_is_chosen():
    result = CliRunner().invoke(app, ["heads"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "C and scaling (standardised or raw) chosen by selection" in text
    assert "chosen by `train`'s selection unless fixed with -O: scale, C" in text
    assert "picked on validation" not in text
    listed = {row["id"]: row for row in json.loads(CliRunner().invoke(app, ["heads", "--json"]).output)}
    assert listed["logreg"]["chosen_by_selection"] == ["scale", "C"] and listed["dense"]["chosen_by_selection"] == []
