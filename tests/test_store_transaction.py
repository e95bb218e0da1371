"""Issue 25: the store's transaction, O(new) lookups, verification records, tiers, reader leases."""

from __future__ import annotations

import os

import numpy as np
import pytest

import embedx
from embedx.pipeline.keys import content_keys
from embedx.store import layout as L
from embedx.store import verify
from embedx.store.compact import compact
from embedx.store.transaction import writer

TEXTS = [f"text number {i} with some words" for i in range(400)]


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "features.h5"


def set_files(path):
    return sorted(p.name for p in L.segment_dir(path).glob("set@*.h5"))


def test_extraction_sees_only_the_transaction_api():
    import ast
    from pathlib import Path

    import embedx.pipeline.extraction as extraction

    tree = ast.parse(Path(extraction.__file__).read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {m for m in modules if m.startswith("embedx.store")} == {"embedx.store.transaction"}


def test_lookup_finds_stored_keys_without_loading_them(registry, store_path):
    embedx.extract(TEXTS[:300], "word-stats", store_path)
    with writer(store_path) as w:
        name = L.set_name(
            "word-stats", embedx.extract(TEXTS[:1], "word-stats", store_path.with_name("o.h5")).config_hash
        )
        keys = w.lookup(name)
        assert keys.nbytes == 0  # memory-mapped, not read
        rows, _ = keys.find(content_keys(TEXTS))
        assert (rows[:300] >= 0).all() and (rows[300:] < 0).all()
        assert w.missing(name, content_keys(TEXTS)).sum() == 100


def test_the_segment_count_stays_logarithmic(registry, store_path):
    for start in range(0, 400, 10):  # 40 small runs
        embedx.extract(TEXTS[start:start + 10], "word-stats", store_path)
    from embedx.store.catalog import expire_retired

    # replaced segments wait out the grace period for plain h5py readers (who hold no lease); past it,
    # log2(40) + 1 files are left and nothing retired stays behind
    expire_retired(L.segment_dir(store_path), grace=0)
    assert len(set_files(store_path)) <= 7
    with embedx.open_store(store_path) as store:
        assert len(store.feature_set("word-stats")) == 400
        assert store.feature_set("word-stats").vectors(TEXTS).shape[0] == 400


def test_a_reader_held_open_across_three_compactions_reads_throughout(registry, store_path):
    from embedx.store.catalog import expire_retired

    embedx.extract(TEXTS[:100], "word-stats", store_path)
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("word-stats")
        expected = fset.vectors(TEXTS[:100])
        for stop in (200, 300, 400):
            embedx.extract(TEXTS[stop - 100:stop], "word-stats", store_path)
            compact(store_path)
            assert np.array_equal(fset.vectors(TEXTS[:100]), expected)
    embedx.extract(["after the reader"], "word-stats", store_path)
    expire_retired(L.segment_dir(store_path), grace=0)  # the lease is gone and the grace (for plain h5py) past
    with embedx.open_store(store_path) as store:
        mapped = {s.file for s in store.segments["word-stats--" + store.sets()[0].config_hash[:12]]}
    assert set(set_files(store_path)) == mapped


def test_a_verification_record_spares_the_next_process_and_never_passes_a_changed_file(registry, store_path,
                                                                                    monkeypatch):
    embedx.extract(TEXTS[:50], "word-stats", store_path)
    allowed = L.segment_dir(store_path)
    verify._VERIFIED.clear()  # as in a new process
    for child in ("_forked", "_spawned"):  # forked when single-threaded, else spawned (as under pytest-xdist)
        monkeypatch.setattr(verify, child, lambda *a: pytest.fail("verified again"))
    verify.verify_isolated(store_path, allowed)
    segment = L.segment_dir(store_path) / set_files(store_path)[0]
    with open(segment, "r+b") as handle:  # edited in place: same name, same size
        handle.seek(0, 2)
        handle.seek(handle.tell() - 1)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(byte)
    verify._VERIFIED.clear()
    calls = []
    for child in ("_forked", "_spawned"):
        monkeypatch.setattr(verify, child, lambda *a: calls.append(1) or "K")
    verify.verify_isolated(store_path, allowed)
    assert calls == [1]


def test_index_temporaries_of_a_killed_writer_are_removed_and_nothing_else(registry, store_path, tmp_path):
    embedx.extract(TEXTS[:5], "word-stats", store_path)
    stale = tmp_path / f".{store_path.name}.tmp-12345-abcd1234"
    stale.write_bytes(b"half an index")
    other = tmp_path / ".other.h5.tmp-12345-abcd1234"
    other.write_bytes(b"not ours")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    linked = tmp_path / f".{store_path.name}.tmp-99-beef"
    os.symlink(victim, linked)
    embedx.extract(TEXTS[5:10], "word-stats", store_path)
    assert not stale.exists() and other.exists() and victim.read_text() == "keep" and os.path.islink(linked)


def test_training_resolves_the_embedder_through_the_public_function(registry):
    from embedx.heads.training import expected_config
    from embedx.pipeline.extraction import resolve_embedder

    resolved = resolve_embedder(None, "word-stats")
    assert expected_config(resolved.config) == resolved.config_hash
