"""A fully cached re-run of an unchanged input file is answered from the index without reading the input."""

from __future__ import annotations

import os

import pytest

import embedx
import embedx.pipeline.extraction as extraction
from embedx.inputs import InputSpec
from embedx.pipeline.extraction import ExtractSettings, extract_file
from embedx.store import layout as L
from embedx.store.catalog import load
from embedx.store.commit import write_index

LINES = ["a great film", "a dull film", "", "a great film", "long " * 9 + "text"]


@pytest.fixture
def reads(monkeypatch):
    """How many times extraction opened the input (the fast path opens it never)."""
    opened = []
    real = extraction.iter_records

    def counting(spec):
        opened.append(spec.path)
        return real(spec)

    monkeypatch.setattr(extraction, "iter_records", counting)
    return opened


def run(path, store_path, name=None, **settings):
    settings.setdefault("max_length", 3)
    return extract_file(InputSpec(str(path)), ExtractSettings("word-stats", store_path, **settings), name=name)


def summary(report):
    return (report.rows, report.unique, report.cached, report.empty, report.skipped_empty, report.truncated_input)


@pytest.fixture
def lines(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_an_unchanged_file_is_not_read_again(registry, store_path, lines, reads):
    first = run(lines, store_path)
    assert first.input_read and first.computed == 4 and len(reads) == 1
    before = store_path.stat()
    again = run(lines, store_path)
    assert not again.input_read and again.computed == 0 and len(reads) == 1
    assert summary(again) == (5, 4, 4, 1, 0, 1)  # the counts of a run that reads it
    assert (store_path.stat().st_ino, store_path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_rerun_that_reads_records_the_coverage_for_the_next(registry, store_path, lines, reads):
    embedx.extract(LINES, "word-stats", store_path, name="reviews", max_length=3)  # same table, from a list
    assert run(lines, store_path).input_read  # no fingerprint known yet: read, then recorded
    normal = run(lines, store_path, empty="keep")
    assert not normal.input_read and len(reads) == 1


def test_edits_options_names_and_other_sets_read_the_input(registry, store_path, lines, reads):
    first = run(lines, store_path)
    lines.write_text("\n".join(LINES) + "\na new line\n")  # edited: another digest
    edited = run(lines, store_path)
    assert edited.input_read and edited.computed == 1 and edited.rows == 6
    with embedx.open_store(store_path) as store:
        assert store.input("reviews").texts[-1] == "a new line"
    assert not run(lines, store_path).input_read
    for settings in ({"empty": "skip"}, {"store_text": False}, {"name": "other"}, {"max_length": 2}):
        report = run(lines, store_path, **settings)
        assert report.input_read, settings
    assert not run(lines, store_path, name="other").input_read  # its own table, still as recorded
    skipped = run(lines, store_path, empty="skip")  # replaces table "reviews" again
    assert skipped.input_read and skipped.rows == 5 and skipped.skipped_empty == 1
    again = run(lines, store_path, empty="skip")
    assert not again.input_read and summary(again) == (5, 4, 4, 0, 1, 1)
    assert run(lines, store_path, max_length=2).set_name != first.set_name


def test_touching_or_editing_the_file_reads_it(registry, store_path, lines, reads):
    first = run(lines, store_path)
    stat = lines.stat()
    os.utime(lines, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = run(lines, store_path)
    assert touched.input_read and touched.computed == 0
    assert summary(touched)[:2] == (first.rows, first.unique) and not run(lines, store_path).input_read
    stat = lines.stat()
    lines.write_text(lines.read_text().replace("dull", "dall"))  # same size, new content
    os.utime(lines, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even the same mtime
    changed = run(lines, store_path)
    assert changed.input_read and changed.computed == 1


def test_a_set_made_anew_is_not_taken_for_the_old_one(registry, store_path, lines, reads):
    first = run(lines, store_path)
    catalog = load(store_path)  # remove the set and its rows by hand, then fill a set of the same name anew
    for info in catalog.sets.pop(first.set_name).segments:
        (catalog.directory / info.file).unlink()
    write_index(catalog)
    embedx.extract(["a dull film"], "word-stats", store_path, max_length=3)
    again = run(lines, store_path)
    assert again.input_read and again.computed == 3
    assert not run(lines, store_path).input_read


def test_a_malformed_coverage_record_only_costs_a_read(registry, store_path, lines, reads):
    import h5py

    run(lines, store_path)
    with h5py.File(store_path, "r+") as handle:
        handle[f"{L.INPUTS}/reviews"].attrs["covered"] = "{not json"
    assert run(lines, store_path).input_read
    assert not run(lines, store_path).input_read


def test_stdin_and_lists_are_always_read(registry, store_path, lines, reads, monkeypatch):
    import io
    import sys

    for _ in range(2):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines.read_bytes())))
        report = extract_file(InputSpec("-"), ExtractSettings("word-stats", store_path, max_length=3))
        assert report.input_read
    assert len(reads) == 2


def test_a_cached_rerun_never_loads_the_model(registry, store_path, lines, reads, monkeypatch):
    import fakes

    loads = []
    monkeypatch.setattr(fakes.WordStats, "load", lambda self: loads.append(1), raising=False)
    run(lines, store_path)
    assert loads == [1]
    run(lines, store_path)  # answered from the index
    copy = lines.with_name("copy.txt")
    copy.write_text(lines.read_text())
    report = run(copy, store_path, name="copy")  # read, every text cached
    assert report.input_read and report.computed == 0 and loads == [1] and len(reads) == 2
