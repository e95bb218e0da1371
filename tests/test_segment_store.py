"""The segment store: appends write only new rows, format 1 still reads, compaction, locks, faults, quarantine."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

import embedx
from embedx.contract.errors import EmbedderOutputError, InputError, StoreError
from embedx.store import commit as commit_module
from embedx.store import layout as L
from embedx.store.catalog import expire_retired, recover
from embedx.store.commit import merge_segments
from embedx.store.compact import compact
from embedx.store.keyindex import KeyIndex, KeySet, as_sorted_index, hex_to_binary
from embedx.store.lock import WriterLock

EMBEDX = [sys.executable, "-m", "embedx.cli"]
TEXTS = [f"text number {i} " + "w " * (i % 7) for i in range(300)]


def segment_files(path):
    """Segment files an index maps or will map (not those retired after a compaction)."""
    retired = expire_retired(L.segment_dir(path))
    return {p.name: p.stat() for p in L.segment_dir(path).glob("set@*.h5") if p.name not in retired}


def test_an_append_writes_only_the_new_rows(registry, store_path):
    embedx.extract(TEXTS[:200], "word-stats", store_path, outputs=["doc", "tokens"])
    before = segment_files(store_path)
    report = embedx.extract(TEXTS, "word-stats", store_path, outputs=["doc", "tokens"])
    assert report.computed == 100
    after = segment_files(store_path)
    for name, stat in before.items():  # committed segments are never rewritten
        assert (after[name].st_ino, after[name].st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    (new,) = set(after) - set(before)
    with h5py.File(L.segment_dir(store_path) / new) as segment:
        assert segment.attrs["rows"] == 100
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("word-stats")
        assert fset.vectors(TEXTS)[:, 0].tolist() == [len(t.split()) for t in TEXTS]
        assert [t for t, _ in fset.tokens(TEXTS[195:205])] == [t.split() for t in TEXTS[195:205]]


def test_plain_h5py_reads_every_row_through_the_index(registry, store_path, tmp_path):
    embedx.extract(TEXTS[:100], "word-stats", store_path, outputs=["doc", "tokens"], checkpoint_rows=10)
    embedx.extract(TEXTS, "word-stats", store_path, outputs=["doc", "tokens"], name="all")
    os.chdir(tmp_path.parent)  # relative segment paths resolve against the index's folder, not the cwd
    with h5py.File(store_path, "r") as f:
        (fs,) = f["sets"].values()
        keys = fs["keys"][:]
        assert len(set(keys.tolist())) == 300 == fs.attrs["rows"]
        offsets, words = fs["tokens/offsets"][:], fs["tokens/tokens"].asstr()[:]
        row = {k: i for i, k in enumerate(keys)}
        for text, key in zip(TEXTS, f["inputs/all/keys"][:], strict=True):
            i = row[key]
            assert list(words[offsets[i]:offsets[i + 1]]) == text.split()
            assert fs["doc/values"][i, 0] == len(text.split())


def write_format_1(path, texts):
    """A feature file exactly as embedx 0.1 wrote it (every row inside the file)."""
    from embedx.pipeline.keys import content_key

    string = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "embedx-features", "format_version": 1, "created": "then", "updated": "then",
                        "embedx_version": "0.1.0"})
        sets, inputs = f.create_group("sets"), f.create_group("inputs")
        unique = list(dict.fromkeys(texts))
        outputs = [{"name": "doc", "level": "document", "dim": 2, "per_layer": False, "layers": None},
                   {"name": "tokens", "level": "token", "dim": 1, "per_layer": False, "layers": None}]
        g = sets.create_group("old--0123456789ab")
        g.attrs.update({"embedder": "old", "plugin": "p", "config_hash": "0123456789ab" * 5, "dtype": "float32",
                        "config": json.dumps({"options": {}}), "outputs": json.dumps(outputs), "rows": len(unique)})
        g["keys"] = np.array([content_key(t) for t in unique], dtype="S32")
        g["truncated"] = np.zeros(len(unique), dtype=np.int32)
        g.create_group("doc")["values"] = np.array([[len(t), i] for i, t in enumerate(unique)], dtype=np.float32)
        tok = g.create_group("tokens")
        words = [w for t in unique for w in t.split()]
        tok["values"] = np.array([[len(w)] for w in words], dtype=np.float32).reshape(-1, 1)
        tok["offsets"] = np.concatenate([[0], np.cumsum([len(t.split()) for t in unique])]).astype(np.int64)
        tok.create_dataset("tokens", data=np.array(words, dtype=object), dtype=string)
        t = inputs.create_group("old")
        t.attrs.update({"source": "x.txt", "columns": json.dumps(["label"]), "text_stored": True, "rows": len(texts)})
        t["keys"] = np.array([content_key(x) for x in texts], dtype="S32")
        t.create_dataset("text", data=np.array(texts, dtype=object), dtype=string)
        t["empty"] = np.zeros(len(texts), dtype=bool)
        t["line"] = np.arange(1, len(texts) + 1, dtype=np.int64)
        t.create_group("columns")["label"] = np.arange(len(texts), dtype=np.int64)
        t["columns/label"].attrs["name"] = "label"


def test_a_format_1_file_is_read_as_is_and_upgraded_on_the_first_write(registry, store_path, caplog):
    texts = ["a b", "c", "a b", "d e f"]
    write_format_1(store_path, texts)
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("old")
        expected = fset.vectors(input="old")
        assert expected[:, 0].tolist() == [3, 1, 3, 5]
        assert [t for t, _ in fset.tokens(["d e f"])] == [["d", "e", "f"]]
    embedx.extract(["new text"], "word-stats", store_path)
    assert "upgraded" in caplog.text
    with embedx.open_store(store_path) as store:
        assert store.file.attrs["format_version"] == 2
        fset = store.feature_set("old")
        assert np.array_equal(fset.vectors(input="old"), expected)
        assert fset.tokens(["d e f"])[0][1][:, 0].tolist() == [1, 1, 1]
        assert store.input("old").column("label").tolist() == [0, 1, 2, 3]
        assert store.input("old").texts == texts
        assert len(store.feature_set("word-stats")) == 1


def test_compact_merges_segments_and_keeps_every_row(registry, store_path, monkeypatch):
    monkeypatch.setattr(commit_module, "TIER_CAP_BYTES", 0)  # no automatic compaction: compact by hand
    for stop in (50, 100, 150, 300):
        embedx.extract(TEXTS[:stop], "word-stats", store_path, outputs=["doc", "tokens"], name="t")
    with embedx.open_store(store_path) as store:
        expected = store.feature_set("word-stats").vectors(input="t")
        tokens = store.feature_set("word-stats").tokens(input="t")
    assert len(segment_files(store_path)) == 4
    report = compact(store_path)
    assert (report.segments_before, report.segments_after) == (4, 1)
    assert len(segment_files(store_path)) == 1
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("word-stats")
        assert np.array_equal(fset.vectors(input="t"), expected)
        assert all(
            a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(fset.tokens(input="t"), tokens, strict=True)
        )
    assert embedx.extract(TEXTS, "word-stats", store_path, outputs=["doc", "tokens"]).computed == 0


def test_a_compaction_killed_before_or_after_its_index_swap_leaves_one_copy(registry, store_path):
    for stop in (50, 100, 300):
        embedx.extract(TEXTS[:stop], "word-stats", store_path, outputs=["doc", "tokens"])
    with WriterLock(store_path):  # killed before the swap: the merged segment is an orphan
        catalog = recover(store_path)
        (state,) = catalog.sets.values()
        merged = merge_segments(catalog, state, state.segments)
    assert (L.segment_dir(store_path) / merged.file).exists()
    assert embedx.extract(TEXTS, "word-stats", store_path, outputs=["doc", "tokens"]).computed == 0
    assert merged.file not in segment_files(store_path)  # retired: never mapped, deleted after the grace period
    expire_retired(L.segment_dir(store_path), grace=0)
    assert not (L.segment_dir(store_path) / merged.file).exists()
    with WriterLock(store_path):  # killed after the swap: the replaced segments are the orphans
        catalog = recover(store_path)
        (state,) = catalog.sets.values()
        old = [s.file for s in state.segments]
        state.segments = [merge_segments(catalog, state, state.segments)]
        from embedx.store.commit import write_index

        write_index(catalog)
    assert all((L.segment_dir(store_path) / f).exists() for f in old)
    report = embedx.extract(TEXTS, "word-stats", store_path, outputs=["doc", "tokens"])
    assert report.computed == 0
    assert set(segment_files(store_path)) == {state.segments[0].file}
    expire_retired(L.segment_dir(store_path), grace=0)  # past the grace period: gone
    assert not any((L.segment_dir(store_path) / f).exists() for f in old)
    with embedx.open_store(store_path) as store:
        assert store.feature_set("word-stats").vectors(TEXTS)[:, 0].tolist() == [len(t.split()) for t in TEXTS]


def test_a_symlinked_output_is_locked_and_written_through_the_link(registry, store_path, tmp_path):
    link = tmp_path / "link.h5"
    link.symlink_to(store_path)
    embedx.extract(["a"], "word-stats", store_path)
    with WriterLock(store_path), pytest.raises(StoreError, match="being written by another embedx process"):
        embedx.extract(["b"], "word-stats", link)
    embedx.extract(["b"], "word-stats", link, options={"scale": 2.0})
    assert link.is_symlink()
    with embedx.open_store(link) as store:
        assert len(store.sets()) == 2


def test_the_lock_file_is_removed_on_exit_and_a_fresh_writer_can_lock(registry, store_path):
    embedx.extract(["a"], "word-stats", store_path)
    assert not store_path.with_name("features.h5.lock").exists()
    with pytest.raises(EmbedderOutputError):
        embedx.extract(["x POISON"], "word-stats", store_path, options={"bad": "nan"})
    assert not store_path.with_name("features.h5.lock").exists()


def test_the_lock_is_taken_before_any_input_is_read(tmp_path):
    out = tmp_path / "f.h5"
    cmd = [*EMBEDX, "extract", "-", "-e", "hashing-ngrams", "-o", str(out), "--no-progress"]
    first = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not out.with_name("f.h5.lock").exists() and time.time() < deadline:
            time.sleep(0.02)
        # The second writer's stdin stays open and empty: it is refused without reading any of it.
        second = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert second.wait(timeout=120) == 2
            assert b"being written by another embedx process" in second.stderr.read()
        finally:
            second.kill()
            second.communicate()
    finally:
        first.communicate(b"still reading\n", timeout=60)  # the first was blocked reading stdin, lock held
    assert first.returncode == 0
    with embedx.open_store(out) as store:
        assert store.input("stdin").texts == ["still reading"]


def test_float16_overflow_is_refused_after_the_cast(registry, store_path):
    with pytest.raises(EmbedderOutputError, match="float16 cannot store.*--dtype float32"):
        embedx.extract(["x " * 70000], "word-stats", store_path, dtype="float16")
    assert embedx.extract(["x " * 70000], "word-stats", store_path).computed == 1


def test_a_lone_surrogate_is_refused_before_staging_and_the_next_run_proceeds(registry, store_path):
    with pytest.raises(InputError, match=r"line 2: the text holds .*U\+D800.*lone surrogate"):
        embedx.extract(["fine", "bad \ud800 text"], "word-stats", store_path, name="t")
    report = embedx.extract(["fine", "other"], "word-stats", store_path, name="t")
    assert report.rows == 2
    with embedx.open_store(store_path) as store:
        assert store.input("t").texts == ["fine", "other"]


def test_column_names_that_clean_to_the_same_name_are_both_kept(registry, store_path):
    embedx.extract(["a", "b"], "word-stats", store_path, name="t", columns={"a b": ["1", "2"], "a_b": ["x", "y"]})
    with embedx.open_store(store_path) as store:
        table = store.input("t")
        assert table.column("a b").tolist() == [1, 2] and table.column("a_b").tolist() == ["x", "y"]


def test_an_uncommittable_pending_segment_is_quarantined_with_its_row_count(registry, store_path):
    embedx.extract(TEXTS[:10], "word-stats", store_path, outputs=["doc", "tokens"])
    with WriterLock(store_path):
        catalog = recover(store_path)
        (state,) = catalog.sets.values()
        from embedx.store.segment import read_set_arrays, write_set_segment

        arrays = read_set_arrays(L.segment_dir(store_path) / state.segments[0].file, state.meta)
        arrays["keys"] = np.array([b"%032x" % i for i in range(10)], dtype="S32")
        bad = write_set_segment(catalog.directory, state.name, state.meta, 50, 50, arrays, {"tokens": 999})
    report = embedx.extract(TEXTS[:12], "word-stats", store_path, outputs=["doc", "tokens"])
    assert report.computed == 2
    assert any("10 uncommitted rows of set" in n and "token offsets start at 999" in n for n in report.notes)
    assert (L.quarantine_dir(store_path) / bad.file).exists()


def test_a_full_disk_gives_one_message_and_loses_nothing(tmp_path):
    out = tmp_path / "f.h5"
    small = tmp_path / "small.txt"
    small.write_text("\n".join(f"line {i}" for i in range(50)) + "\n")
    big = tmp_path / "big.txt"
    # The first chunk of input is embedded and staged; the second holds a 2.3 MB line, whose input
    # piece then passes the file-size limit.
    big.write_text("\n".join(f"other line {i} " * 5 for i in range(10000)) + "\n" + "word " * 450_000 + "\n")
    def cmd(corpus):
        return [*EMBEDX, "extract", str(corpus), "-e", "hashing-ngrams", "-o", str(out), "--no-progress",
                "-O", "dim=1024"]

    subprocess.run(cmd(small), check=True, capture_output=True)
    with embedx.open_store(out) as store:
        before = store.feature_set("hashing-ngrams").vectors(input="small")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

    failed = subprocess.run([*cmd(big), "--checkpoint-rows", "200"], capture_output=True,
                            text=True, preexec_fn=limit)
    assert failed.returncode == 2, failed.stderr
    assert "file-size limit" in failed.stderr and "Traceback" not in failed.stderr
    with embedx.open_store(out) as store:
        assert np.array_equal(store.feature_set("hashing-ngrams").vectors(input="small"), before)
    done = subprocess.run([*cmd(big), "--json"], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["cached"] >= 8000  # batches finished before the limit were kept


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_a_clear_error(registry, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="cannot write in .*ro"):
            embedx.extract(["a"], "word-stats", folder / "f.h5")
    finally:
        folder.chmod(0o755)


def test_a_missing_output_folder_is_a_clear_error(registry, tmp_path):
    with pytest.raises(InputError, match="folder .*missing does not exist"):
        embedx.extract(["a"], "word-stats", tmp_path / "missing" / "f.h5")


def test_a_reader_of_a_replaced_index_keeps_working_and_a_missing_segment_is_an_error(registry, store_path,
                                                                                     monkeypatch):
    monkeypatch.setattr(commit_module, "TIER_CAP_BYTES", 0)  # no automatic compaction: compact by hand
    for stop in (50, 100):
        embedx.extract(TEXTS[:stop], "word-stats", store_path, name="t")
    with embedx.open_store(store_path) as store:  # opened before the compaction
        fset = store.feature_set("word-stats")
        expected = fset.vectors(TEXTS[:100])
        compact(store_path)
        assert np.array_equal(fset.vectors(TEXTS[:100]), expected)  # replaced segments are kept a while
        expire_retired(L.segment_dir(store_path), grace=0)
        with pytest.raises(StoreError, match="a segment file it maps is gone"):
            fset.vectors(TEXTS[:100])
    with embedx.open_store(store_path) as store:
        assert np.array_equal(store.feature_set("word-stats").vectors(TEXTS[:100]), expected)
    next(L.segment_dir(store_path).glob("set@*.h5")).unlink()
    with pytest.raises(StoreError, match="does not exist"):
        embedx.open_store(store_path)


def test_a_reader_sees_the_old_or_the_new_state_never_a_mix(registry, store_path):
    embedx.extract(TEXTS[:20], "word-stats", store_path)
    seen, errors, stop = set(), [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                with h5py.File(store_path, "r") as f:
                    (fs,) = f["sets"].values()
                    keys, values = fs["keys"][:], fs["doc/values"][:]
                    assert len(keys) == len(values) == fs.attrs["rows"] and values[:, 0].all()
                    seen.add(len(keys))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for stop_at in range(40, 301, 20):
            embedx.extract(TEXTS[:stop_at], "word-stats", store_path)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[:3]
    assert seen <= set(range(20, 301, 20)) and len(seen) > 1


def test_key_lookup_matches_a_python_dict():
    rng = np.random.default_rng(0)
    keys = np.array([b"%032x" % int(v) for v in rng.integers(0, 2**62, 5000)], dtype="S32")
    binary = hex_to_binary(keys)
    index = KeyIndex()
    index.add(*as_sorted_index(binary[:3000]), base=0)
    index.add(*as_sorted_index(binary[3000:]), base=3000)
    queries = np.concatenate([binary[::7], hex_to_binary(np.array([b"f" * 32, b"0" * 32], dtype="S32"))])
    truth = {k: i for i, k in enumerate(keys.tolist())}
    expected = [truth.get(k, -1) for k in np.concatenate([keys[::7], [b"f" * 32, b"0" * 32]]).tolist()]
    assert index.lookup(queries).tolist() == expected
    assert index.nbytes <= 20 * len(keys)
    twins = np.array([b"ab" * 8 + b"00" * 8, b"ab" * 8 + b"ff" * 8, b"ab" * 8 + b"7f" * 8], dtype="S32")
    pair = KeyIndex()  # keys that share their first 8 bytes are still told apart
    pair.add(*as_sorted_index(hex_to_binary(twins[:2])), base=10)
    assert pair.lookup(hex_to_binary(twins)).tolist() == [10, 11, -1]
    seen = KeySet()
    for part in np.array_split(binary, 9):
        seen.add(part[~seen.contains(part)])
    assert len(seen) == len(set(keys.tolist())) and seen.contains(binary).all()


@pytest.mark.parametrize(("code", "words"), [(28, "no space left"), (27, "file-size limit"), (30, "cannot write in"),
                                             (13, "cannot write in")])
def test_os_write_errors_become_one_message_naming_the_place(tmp_path, code, words):
    from embedx.store.faults import resource_error

    error = resource_error(OSError(code, os.strerror(code)), tmp_path / "f.h5.segments" / "x.h5", 1 << 20)
    assert words in str(error) and str(tmp_path) in str(error)


def test_staging_of_an_older_embedx_is_set_aside_and_the_run_proceeds(registry, store_path):
    write_format_1(store_path, ["a b"])
    staging = store_path.with_name("features.h5.staging") / "sets" / "x"
    staging.mkdir(parents=True)
    (staging / "shard-1.npz").write_bytes(b"PK not a zip")
    report = embedx.extract(["c d"], "word-stats", store_path)
    assert report.computed == 1 and not store_path.with_name("features.h5.staging").exists()
    assert any("older embedx" in note for note in report.notes)
    assert any(L.quarantine_dir(store_path).glob("staging-*"))


def test_key_index_reads_only_plain_datasets_of_the_segment(tmp_path):
    from embedx.store.segment import read_key_index

    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.zeros((2, 16), dtype=np.uint8)
    linked, external = tmp_path / "linked.h5", tmp_path / "external.h5"
    with h5py.File(linked, "w") as f:
        f["index/keys"] = h5py.ExternalLink(str(secret), "data")
    with h5py.File(external, "w") as f:
        f.create_dataset("index/keys", shape=(2, 16), dtype=np.uint8, external=[(str(secret), 0, 32)])
        f["index/rows"] = np.arange(2, dtype=np.uint32)
        f["truncated"] = np.zeros(2, dtype=np.int32)
    with pytest.raises(StoreError, match="index/keys is missing or a link"):
        read_key_index(linked, 2)
    with pytest.raises(StoreError, match="index/keys is not a plain uint8 dataset"):
        read_key_index(external, 2)
