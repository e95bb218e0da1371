"""Side paths beside a feature file (issue 22): never followed, never someone else's file.

A hostile sender ships ``FILE.h5`` with things beside it: ``FILE.h5.lock``, ``FILE.h5.segments/``,
``FILE.h5.quarantine/``, segment files, ``retired.json``, temporaries, each possibly a link into
the user's other files, a hard link, a FIFO, or another store's folder. Every test builds the
attack with real files, runs the real commands, and checks that the command refuses it in one line
(or handles it) and that the "victim" folder, standing for the user's other files, is byte-for-byte
unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
import fakes
from embedx.cli import app
from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.compact import compact
from embedx.store.sidepaths import SEGMENT_NAME

TEXTS = ["a gripping film", "dull and long", "a gripping film", "fine", "the plot thickens"]
OPTIONS = {"dim": 8}
SECRET = b"root:x:0:0:the bytes of a file outside the feature file\n"


@pytest.fixture
def victim(tmp_path):
    """The user's other files: a folder embedx must never touch."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    (folder / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + SECRET)
    (folder / "notes.h5").write_bytes(b"the user's own h5 file\n")
    return folder


@pytest.fixture
def store(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    return build(work / "features.h5")


def build(path: Path, texts=TEXTS) -> Path:
    embedx.extract(texts, "hashing-ngrams", path, name="t", options=OPTIONS)
    return path


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: kind, bytes, link target; any change shows."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                found[os.path.relpath(path, folder)] = ("file", Path(path).read_bytes(), info.st_nlink)
            elif stat.S_ISLNK(info.st_mode):
                found[os.path.relpath(path, folder)] = ("link", os.readlink(path))
            else:
                found[os.path.relpath(path, folder)] = (stat.filemode(info.st_mode),)
    return found


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def segments(path: Path) -> Path:
    return L.segment_dir(path)


def refused(result, *words: str) -> str:
    """The command failed with one line (exit 2: an embedx error, not an unexpected one) saying ``words``."""
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    for word in words:
        assert word in out, out
    return out


def writers(path: Path, tmp_path: Path) -> list[list]:
    source = tmp_path / "more.txt"
    source.write_text("a brand new text\nanother new one\n")
    return [["extract", source, "-e", "hashing-ngrams", "-O", "dim=8", "-o", path, "--no-progress"],
            ["compact", path]]


def readers(path: Path, tmp_path: Path) -> list[list]:
    return [["info", path], ["export", path, "-e", "hashing-ngrams", "--input", "t", "-o", tmp_path / "out.npy"]]


# -- the lock -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_and_its_target_untouched(store, victim, tmp_path, kind):
    lock = store.with_name(store.name + ".lock")
    {"symlink": lambda: os.symlink(victim / "secret.txt", lock),
     "hardlink": lambda: os.link(victim / "secret.txt", lock),
     "fifo": lambda: os.mkfifo(lock)}[kind]()
    before = snapshot(victim)
    for args in writers(store, tmp_path):
        refused(cli(*args), "features.h5.lock is", "left it alone")
    assert snapshot(victim) == before
    lock.unlink()
    assert cli(*writers(store, tmp_path)[0]).exit_code == 0


# -- the segment folder -------------------------------------------------------------------------

def test_a_segment_folder_linked_to_the_users_folder_is_refused_and_nothing_moves(store, victim, tmp_path):
    folder = segments(store)
    for file in folder.iterdir():  # the sender's segments beside the user's own .h5 files
        os.replace(file, victim / file.name)
    folder.rmdir()
    os.symlink(victim, folder)
    before = snapshot(victim)
    for args in writers(store, tmp_path) + readers(store, tmp_path):
        refused(cli(*args), "features.h5.segments is a symbolic link")
    checked = cli("check", store)
    assert checked.exit_code == 1 and "is a symbolic link" in checked.output and "Traceback" not in checked.output
    with pytest.raises(StoreError, match="symbolic link"):
        compact(store)  # what the renamed-file message recommends
    assert snapshot(victim) == before


def test_a_segment_folder_linked_to_another_stores_segments_is_refused_and_that_store_untouched(store, tmp_path):
    other = build(tmp_path / "theirs.h5", ["their own text", "and another"])
    theirs = segments(other)
    folder = segments(store)
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    os.symlink(theirs, folder)
    with h5py.File(store, "r+") as f:  # the index now names the other store's segments
        del f[L.SEGMENTS]
        f.create_dataset(L.SEGMENTS, data=np.array([], dtype=object), dtype=h5py.string_dtype())
    before = snapshot(tmp_path / "theirs.h5.segments"), other.read_bytes()
    for args in writers(store, tmp_path) + readers(store, tmp_path):
        refused(cli(*args), "symbolic link")
    assert (snapshot(theirs), other.read_bytes()) == before
    with embedx.open_store(other) as opened:
        assert len(opened.feature_set("hashing-ngrams")) == 2


def test_a_real_folder_of_another_store_is_never_merged_or_cleaned(tmp_path):
    """``mv a.h5 b.h5`` (b's index replaced), then the renamed-file advice: the folder b.h5.segments
    holds a's files (moved in along) and b's own. The index is a's, the folder's record is b's:
    compact and extract refuse, and b's files stay."""
    a, b = build(tmp_path / "a.h5"), build(tmp_path / "b.h5", ["b's text", "b's other text"])
    for file in segments(a).iterdir():
        if SEGMENT_NAME.fullmatch(file.name):
            os.replace(file, segments(b) / file.name)
    os.replace(a, b)
    before = {k: v for k, v in snapshot(segments(b)).items()}
    for args in writers(b, tmp_path):
        refused(cli(*args), "does not belong to", "b.h5")
    assert snapshot(segments(b)) == before


def test_the_renamed_file_advice_is_safe_to_follow(tmp_path):
    original, renamed = build(tmp_path / "features.h5"), tmp_path / "shared.h5"
    os.replace(original, renamed)
    message = refused(cli("info", renamed), "was renamed")
    assert "embedx compact" in message
    os.symlink(segments(original), segments(renamed))  # "renamed along", with a link instead
    before = snapshot(segments(original))
    refused(cli("compact", renamed), "shared.h5.segments is a symbolic link")
    assert snapshot(segments(original)) == before
    os.unlink(segments(renamed))
    os.replace(segments(original), segments(renamed))  # really renamed along: compact records it
    assert cli("compact", renamed).exit_code == 0
    with embedx.open_store(renamed) as opened:
        assert len(opened.feature_set("hashing-ngrams")) == 4


def test_a_segment_file_linked_outside_is_refused(store, victim, tmp_path):
    first = sorted(segments(store).glob("set@*.h5"))[0]
    os.replace(first, victim / "model.h5")  # the same bytes, reached through a link
    os.symlink(victim / "model.h5", first)
    before = snapshot(victim)
    for args in writers(store, tmp_path) + readers(store, tmp_path):
        refused(cli(*args), "symbolic link")
    assert snapshot(victim) == before


# -- recovery: quarantine, orphans, retired.json, temporaries -----------------------------------

def unreadable(store: Path, name: str = "set@x@00000099-00000099@deadbeef.h5") -> str:
    (segments(store) / name).write_bytes(b"\x89HDF\r\n\x1a\n not really")
    return name


def test_a_quarantine_folder_linked_elsewhere_is_refused_and_its_target_untouched(store, victim, tmp_path):
    name = unreadable(store)
    (victim / name).write_bytes(b"the user's file of the same name")
    (segments(store) / "model.h5").write_bytes(b"the sender's bytes")  # not a segment name: never moved
    os.symlink(victim, store.with_name(store.name + ".quarantine"))
    before = snapshot(victim)
    for args in writers(store, tmp_path):
        refused(cli(*args), "features.h5.quarantine is a symbolic link")
    assert snapshot(victim) == before
    os.unlink(store.with_name(store.name + ".quarantine"))
    result = cli(*writers(store, tmp_path)[0])
    assert result.exit_code == 0, result.output
    assert (L.quarantine_dir(store) / name).exists()
    assert (segments(store) / "model.h5").read_bytes() == b"the sender's bytes"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors through /proc")
def test_a_quarantine_move_syncs_the_folder_it_moves_into(store, monkeypatch):
    name = unreadable(store)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    report = embedx.extract(["one more"], "hashing-ngrams", store, options=OPTIONS)
    assert any("set aside the unreadable segment" in note for note in report.notes)
    assert str(L.quarantine_dir(store)) in synced and str(segments(store)) in synced
    assert (L.quarantine_dir(store) / name).exists()


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_an_orphan_that_is_a_link_or_fifo_is_left_alone(store, victim, kind):
    orphan = segments(store) / "set@x@00000099-00000099@deadbeef.h5"
    {"symlink": lambda: os.symlink(victim / "model.h5", orphan),
     "hardlink": lambda: os.link(victim / "model.h5", orphan),
     "fifo": lambda: os.mkfifo(orphan)}[kind]()
    before = snapshot(victim)
    report = embedx.extract(["one more"], "hashing-ngrams", store, options=OPTIONS)
    assert report.computed == 1
    assert any("left" in note and "alone" in note for note in report.notes)
    assert os.path.lexists(orphan) and not L.quarantine_dir(store).exists()
    compact(store)
    assert os.path.lexists(orphan)
    assert snapshot(victim) == before


@pytest.mark.parametrize("name", ["..", "../../victim/notes.h5", "a/b", "features.h5", "retired.json"])
def test_a_retired_list_naming_anything_but_a_segment_is_refused_in_one_line(store, victim, tmp_path, name):
    (segments(store) / "retired.json").write_text(json.dumps({name: 0}))
    before = snapshot(victim), snapshot(store.parent)
    for args in writers(store, tmp_path):
        refused(cli(*args), "retired.json lists", "not a segment file")
    assert (snapshot(victim), snapshot(store.parent)) == before


def test_a_retired_list_or_record_that_is_a_link_is_refused(store, victim, tmp_path):
    os.symlink(victim / "secret.txt", segments(store) / "retired.json")
    before = snapshot(victim)
    refused(cli(*writers(store, tmp_path)[1]), "retired.json is a symbolic link")
    os.unlink(segments(store) / "retired.json")
    (segments(store) / "store.json").unlink()
    os.symlink(victim / "secret.txt", segments(store) / "store.json")
    refused(cli(*writers(store, tmp_path)[1]), "store.json is a symbolic link")
    assert snapshot(victim) == before


def test_planted_temporaries_are_never_written_through(store, victim, tmp_path):
    folder = segments(store)
    first = sorted(folder.glob("set@*.h5"))[0].name
    os.symlink(victim / "secret.txt", folder / f".{first}.tmp-1")  # named like a temporary of the store
    os.symlink(victim / "model.h5", folder / ".retired.json.tmp-2-abcd")
    for pid in range(os.getpid() - 2, os.getpid() + 3):  # the old predictable name of the index temporary
        os.symlink(victim / "notes.h5", store.with_name(f".{store.name}.tmp-{pid}"))
    before = snapshot(victim)
    for args in writers(store, tmp_path):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    assert snapshot(victim) == before
    assert os.path.islink(folder / f".{first}.tmp-1")  # a link is left alone, not even unlinked


def test_old_staging_linked_elsewhere_is_refused(store, victim, tmp_path):
    os.symlink(victim, store.with_name(store.name + ".staging"))
    before = snapshot(victim)
    for args in writers(store, tmp_path):
        refused(cli(*args), "features.h5.staging is a symbolic link")
    assert snapshot(victim) == before


def test_a_format_1_file_beside_another_stores_folder_moves_it_aside_never_deletes(tmp_path, registry):
    from test_segment_store import write_format_1

    other = build(tmp_path / "other.h5")
    path = tmp_path / "old.h5"
    write_format_1(path, ["a b", "c"])
    os.replace(segments(other), segments(path))  # a folder that is not the old file's
    before = snapshot(segments(path))
    report = embedx.extract(["d e"], "word-stats", path)
    assert report.computed == 1 and any("set aside" in n and "nothing in it was deleted" in n for n in report.notes)
    (aside,) = L.quarantine_dir(path).glob("segments-*")
    assert snapshot(aside) == before
    with embedx.open_store(path) as opened:
        assert len(opened.feature_set("old")) == 2


def test_a_killed_upgrade_is_cleared_by_the_next_run(tmp_path, registry, monkeypatch):
    from test_segment_store import write_format_1

    from embedx.store import upgrade

    path = tmp_path / "old.h5"
    write_format_1(path, ["a b", "c"])

    def killed(catalog):
        raise KeyboardInterrupt

    monkeypatch.setattr(upgrade, "write_index", killed)
    with pytest.raises(KeyboardInterrupt):
        embedx.extract(["d e"], "word-stats", path)
    assert any(SEGMENT_NAME.fullmatch(p.name) for p in segments(path).iterdir())
    monkeypatch.undo()
    assert embedx.extract(["d e"], "word-stats", path).computed == 1
    assert not L.quarantine_dir(path).exists()  # its own leftovers, recognised and removed
    with embedx.open_store(path) as opened:
        assert len(opened.feature_set("old")) == 2


# -- integrity and malformed records ------------------------------------------------------------

def set_segment(store: Path) -> Path:
    """A segment the index maps now (retired segments stay on disk for the grace period)."""
    from embedx.store import catalog
    referenced = catalog.load(store).referenced()
    return sorted(p for p in segments(store).glob("set@*.h5") if p.name in referenced)[0]


def test_a_permuted_key_index_is_found_by_check_and_refused_by_readers(store, tmp_path):
    segment = set_segment(store)
    with h5py.File(segment, "r+") as f:  # in place: the file keeps its size
        rows = f[L.SORTED_ROWS][:]
        f[L.SORTED_ROWS][:] = np.roll(rows, 1)
    checked = cli("check", store)
    assert checked.exit_code == 1 and "disagree with its stored keys" in checked.output, checked.output
    assert segment.name in checked.output and "no problems" not in checked.output
    with embedx.open_store(store) as opened, pytest.raises(StoreError, match=f"{segment.name}.*another key"):
        opened.feature_set("hashing-ngrams").vectors(TEXTS)
    refused(cli(*readers(store, tmp_path)[1]), segment.name)


def test_key_index_rows_out_of_range_are_one_line(store, tmp_path):
    segment = set_segment(store)
    with h5py.File(segment, "r+") as f:
        f[L.SORTED_ROWS][0] = 4_000_000_000
    refused(cli(*readers(store, tmp_path)[1]), "index/rows names row", segment.name)
    refused(cli(*writers(store, tmp_path)[0]), "index/rows names row")
    checked = cli("check", store)
    assert checked.exit_code == 1 and "index/rows names row" in checked.output


@pytest.mark.parametrize("field, value", [("lo", "zzz"), ("hi", -1), ("rows", 1.5), ("bytes", True),
                                          ("lo", 10**30), ("file", ".."), ("file", "../x.h5"), ("kind", "other"),
                                          ("tokens", [1]), ("extra", 1)])
def test_malformed_segment_lines_of_the_index_are_one_line_naming_the_field(store, tmp_path, field, value):
    with h5py.File(store, "r+") as f:
        lines = [json.loads(t) for t in f[L.SEGMENTS].asstr()[:]]
        lines[0][field] = value
        del f[L.SEGMENTS]
        f.create_dataset(L.SEGMENTS, data=np.array([json.dumps(x) for x in lines], dtype=object),
                         dtype=h5py.string_dtype())
    for args in readers(store, tmp_path) + writers(store, tmp_path):
        refused(cli(*args), "segment list", repr(field))
    checked = cli("check", store)
    assert checked.exit_code == 1 and repr(field) in checked.output and "Traceback" not in checked.output


@pytest.mark.parametrize("attr, value", [("lo", "zzz"), ("rows", -5), ("hi", 2.5), ("meta", "[1]"), ("tokens", "[]"),
                                         ("lo", 1e30)])
def test_malformed_segment_attributes_are_handled_in_one_line(store, attr, value):
    segment = set_segment(store)
    orphan = segments(store) / "set@x@00000099-00000099@deadbeef.h5"  # an uncommitted segment, damaged
    shutil.copyfile(segment, orphan)
    with h5py.File(orphan, "r+") as f:
        f.attrs[attr] = value
    report = embedx.extract(["one more"], "hashing-ngrams", store, options=OPTIONS)
    assert any(f"set aside the unreadable segment {orphan.name}" in note for note in report.notes)
    assert (L.quarantine_dir(store) / orphan.name).exists()
    segment = set_segment(store)  # the commit may have merged segments (automatic compaction)
    with h5py.File(segment, "r+") as f:  # a committed segment, damaged
        f.attrs[attr] = value
    checked = cli("check", store)
    assert checked.exit_code == 1 and segment.name in checked.output and "Traceback" not in checked.output


@pytest.mark.timeout(60)  # blocking on the FIFO fails the test here instead of hanging the suite
def test_a_fifo_as_the_feature_file_is_refused_without_blocking(tmp_path):
    path = tmp_path / "features.h5"
    os.mkfifo(path)
    source = tmp_path / "in.txt"
    source.write_text("a text\n")
    for args in (["info", path], ["check", path], ["export", path, "-e", "x", "-o", tmp_path / "o.npy"],
                 ["extract", source, "-e", "hashing-ngrams", "-o", path, "--no-progress"], ["compact", path]):
        result = cli(*args)
        assert "FIFO" in result.output and "Traceback" not in result.output, result.output
        assert result.exit_code in (1, 2)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


# -- the ordinary life of a store still works ---------------------------------------------------

def test_extract_rerun_append_compact_and_recovery_still_work(tmp_path, registry, monkeypatch):
    path = tmp_path / "features.h5"
    link = tmp_path / "link.h5"
    link.symlink_to(path)  # a link the user made to the file itself is followed, as before
    texts = [f"text number {i}" for i in range(40)]
    assert embedx.extract(texts[:20], "word-stats", path, name="t", checkpoint_rows=4).computed == 20
    assert embedx.extract(texts[:20], "word-stats", link, name="t").computed == 0
    embed = fakes.WordStats.embed_batch

    def dies_midway(self, batch):
        if any("number 37" in text for text in batch):
            raise RuntimeError("cannot embed")
        return embed(self, batch)

    monkeypatch.setattr(fakes.WordStats, "embed_batch", dies_midway)
    with pytest.raises(Exception, match="cannot embed"):  # a run that dies midway keeps its finished batches
        embedx.extract(texts, "word-stats", path, name="t", checkpoint_rows=4)
    monkeypatch.setattr(fakes.WordStats, "embed_batch", embed)
    report = embedx.extract(texts, "word-stats", link, name="t", checkpoint_rows=4)
    assert 0 < report.computed < 20
    assert link.is_symlink()
    record = json.loads((segments(path) / "store.json").read_text())
    with h5py.File(path, "r") as f:
        assert f.attrs["store_id"] == record["store"]
    before = compact(path)
    assert before.segments_after <= before.segments_before
    assert embedx.extract(texts, "word-stats", path, name="t").computed == 0
    checked = cli("check", path)
    assert checked.exit_code == 0 and "ok: no problems found" in checked.output, checked.output
    with embedx.open_store(link) as opened:
        assert opened.feature_set("word-stats").vectors(texts)[:, 0].tolist() == [3] * 40
