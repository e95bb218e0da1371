"""Hostile feature files (issue 10, failures 3 and 8): each test builds its file itself.

A valid file is made through the public API, then one thing in it is swapped for what an
attacker or a broken tool could put there. ``info``, ``export`` and ``extract`` must refuse it
with one line naming the object, never read the foreign bytes, never write through a link.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx.cli import app
from embedx.contract.errors import StoreError
from embedx.store.verify import verify_structure

TEXTS = ["a gripping film", "dull and long", "a gripping film", "fine"]
SECRET = b"root:x:0:0:the secret bytes of another file\n" * 8


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "features.h5"
    embedx.extract(TEXTS, "hashing-ngrams", path, name="t", options={"dim": 8})
    return path


def _verify(f: h5py.File, path) -> None:
    """What ``open_checked`` does: virtual data is followed into the file's own segment folder only."""
    verify_structure(f, path, allowed_dir=path.with_name(path.name + ".segments"))


def _set(f: h5py.File) -> h5py.Group:
    return f["sets"][next(iter(f["sets"]))]


def _values(f: h5py.File) -> h5py.Dataset:
    return _set(f)["doc/values"]


def _replace_values(path, make) -> None:
    with h5py.File(path, "r+") as f:
        group = _set(f)["doc"]
        shape, dtype = group["values"].shape, group["values"].dtype
        del group["values"]
        make(group, shape, dtype)


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _refused(path, match, tmp_path):
    """info, export and extract all refuse ``path`` with one clear line naming ``match``."""
    info = _cli("info", path)
    assert info.exit_code == 2 and match in info.output and "Traceback" not in info.output, info.output
    out = tmp_path / "out.npy"
    exported = _cli("export", path, "-e", "hashing-ngrams", "-o", out)
    assert exported.exit_code == 2 and match in exported.output, exported.output
    assert not out.exists()
    source = tmp_path / "more.txt"
    source.write_text("a brand new text\n")
    extracted = _cli("extract", source, "-e", "hashing-ngrams", "-O", "dim=8", "-o", path, "--no-progress")
    assert extracted.exit_code == 2 and match in extracted.output, extracted.output
    checked = _cli("check", path)
    assert checked.exit_code == 1 and match in checked.output
    return info.output


def test_the_untouched_file_passes_every_check(good, tmp_path):
    with h5py.File(good, "r") as f:
        _verify(f, good)
    result = _cli("check", good)
    assert result.exit_code == 0 and "ok: no problems found" in result.output
    assert _cli("export", good, "-e", "hashing-ngrams", "-o", tmp_path / "x.npy").exit_code == 0


def test_external_link_is_refused_and_its_target_never_read(good, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["d"] = np.frombuffer(SECRET[:96], dtype="f4").reshape(3, 8)
    _replace_values(good, lambda g, shape, dtype: g.__setitem__("values", h5py.ExternalLink(str(other), "/d")))
    message = _refused(good, "external link", tmp_path)
    assert "doc/values" in message


def test_virtual_dataset_onto_another_file_is_refused(good, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["d"] = np.frombuffer(SECRET[:96], dtype="f4").reshape(3, 8)

    def make(group, shape, dtype):
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[:] = h5py.VirtualSource(str(other), "d", shape=shape)
        group.create_virtual_dataset("values", layout)

    _replace_values(good, make)
    _refused(good, "virtual dataset", tmp_path)


def test_external_raw_storage_onto_etc_passwd_is_refused(good, tmp_path):
    secret = tmp_path / "passwd"  # a stand-in for /etc/passwd that the test controls
    secret.write_bytes(SECRET)
    _replace_values(good, lambda g, shape, dtype: g.create_dataset(
        "values", shape=shape, dtype=dtype, external=[(str(secret), 0, int(np.prod(shape)) * 4)]))
    _refused(good, "keeps its raw data in another file", tmp_path)
    with h5py.File(good, "w") as f:  # the real /etc/passwd too, as the issue reported it
        f.create_dataset("x", shape=(4,), dtype="u1", external=[("/etc/passwd", 0, 4)])
    with h5py.File(good, "r") as f, pytest.raises(StoreError, match="/etc/passwd"):
        _verify(f, good)


def test_soft_links_that_dangle_or_leave_the_file_are_refused(good, tmp_path):
    with h5py.File(good, "r+") as f:
        _set(f)["dangling"] = h5py.SoftLink("/nowhere/at/all")
    _refused(good, "does not exist in the file", tmp_path)
    with h5py.File(good, "r+") as f:
        del _set(f)["dangling"]
        f["outside"] = h5py.ExternalLink(str(tmp_path / "x.h5"), "/d")
        _set(f)["through"] = h5py.SoftLink("/outside")
        with pytest.raises(StoreError, match="through another link|external link"):
            _verify(f, good)


def test_a_soft_link_inside_the_file_and_a_hard_link_cycle_are_harmless(good):
    with h5py.File(good, "r+") as f:
        _set(f)["alias"] = h5py.SoftLink(_values(f).name)
        _set(f)["doc"]["loop"] = _set(f)  # a hard-link cycle: the walk must still end
    with h5py.File(good, "r") as f:
        _verify(f, good)


@pytest.mark.parametrize("attr, value, match", [
    ("config", "{not json", "attribute 'config'"),
    ("outputs", "[{\"name\": \"doc\"", "attribute 'outputs'"),
    ("outputs", json.dumps([{"name": "doc", "level": "document", "dim": -3}]), "malformed entry"),
    ("outputs", json.dumps({"name": "doc"}), "expected a list"),
    ("rows", 10**12, "outside 0.."),
    ("rows", "many", "expected an integer"),
])
def test_malformed_set_attributes_are_refused(good, tmp_path, attr, value, match):
    with h5py.File(good, "r+") as f:
        _set(f).attrs[attr] = value
    _refused(good, match, tmp_path)


def test_malformed_columns_attribute_of_an_input_is_refused(good, tmp_path):
    with h5py.File(good, "r+") as f:
        f["inputs/t"].attrs["columns"] = "[oops"
    _refused(good, "attribute 'columns'", tmp_path)


def test_wrong_dims_fewer_value_rows_and_string_values_are_refused(good, tmp_path):
    _replace_values(good, lambda g, shape, dtype: g.create_dataset("values", data=np.zeros((shape[0], 9), dtype)))
    _refused(good, "declares rows of (8,)", tmp_path)
    _replace_values(good, lambda g, shape, dtype: g.create_dataset("values", data=np.zeros((1, 8), "f4")))
    _refused(good, "has 1 rows but the set has 3 keys", tmp_path)
    _replace_values(good, lambda g, shape, dtype: g.create_dataset("values", data=np.array(["x"] * 3, dtype=object),
                                                                    dtype=h5py.string_dtype()))
    _refused(good, "feature values must be float16 or float32", tmp_path)


def test_keys_of_the_wrong_dtype_or_count_are_refused(good, tmp_path):
    with h5py.File(good, "r+") as f:
        del _set(f)["keys"]
        _set(f)["keys"] = np.arange(3)
    _refused(good, "content keys are S32", tmp_path)


def test_a_sparse_two_billion_row_keys_dataset_is_refused_without_allocating(good, tmp_path):
    rows = 2 * 10**9
    with h5py.File(good, "r+") as f:
        table = f["inputs/t"]
        for name in list(table):
            del table[name]
        table.create_dataset("keys", shape=(rows,), dtype="S32", chunks=(1 << 16,))  # never written: no storage
        table.attrs["rows"] = rows
    assert good.stat().st_size < 10 << 20
    with h5py.File(good, "r") as f, pytest.raises(StoreError, match="sparse or truncated"):
        _verify(f, good)
    _refused(good, "sparse or truncated", tmp_path)


def test_extract_never_writes_through_a_link_into_another_file(good, tmp_path):
    victim = tmp_path / "victim.h5"
    with h5py.File(victim, "w") as f:
        f.create_dataset("d", data=np.ones((3, 8), "f4"), maxshape=(None, 8), chunks=(4, 8))
    before = victim.read_bytes()
    _replace_values(good, lambda g, shape, dtype: g.__setitem__("values", h5py.ExternalLink(str(victim), "/d")))
    _refused(good, "external link", tmp_path)
    assert victim.read_bytes() == before
    with pytest.raises(StoreError, match="external link"):
        embedx.extract(["yet another text"], "hashing-ngrams", good, options={"dim": 8})
    assert victim.read_bytes() == before


def test_virtual_datasets_are_followed_only_into_the_segment_folder(good, tmp_path):
    """The store's own layout (FILE.h5.segments/) is allowed; escapes by name or symlink are not."""
    segments = good.with_name(good.name + ".segments")
    segments.mkdir(exist_ok=True)
    outside = tmp_path / "outside.h5"
    for target in (segments / "seg.h5", outside):
        with h5py.File(target, "w") as f:
            f["values"] = np.arange(24, dtype="f4").reshape(3, 8)
    os.symlink(outside, segments / "escape.h5")

    def virtual_onto(name):
        def make(group, shape, dtype):
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[:] = h5py.VirtualSource(name, "values", shape=shape)
            group.create_virtual_dataset("values", layout)
        return make

    _replace_values(good, virtual_onto(f"{segments.name}/seg.h5"))
    with h5py.File(good, "r") as f:
        verify_structure(f, good, allowed_dir=segments)
        with pytest.raises(StoreError, match="only into its own segment folder"):
            verify_structure(f, good)
    for name, match in ((f"{segments.name}/escape.h5", "outside the segment folder"),
                        (f"{segments.name}/../outside.h5", "only plain names"),
                        (str(outside), "outside the segment folder"),
                        (f"{segments.name}/missing.h5", "does not exist")):
        _replace_values(good, virtual_onto(name))
        with h5py.File(good, "r") as f, pytest.raises(StoreError, match=match):
            verify_structure(f, good, allowed_dir=segments)


def test_stored_nan_and_inf_are_refused_by_export_and_reported_by_check(good, tmp_path):
    with h5py.File(good, "r+") as f:
        values = _values(f)
        values[1, 0] = -np.inf  # (a stored NaN also stops the reader of a segment store: it reads as a gap)
        values[2, 3] = np.inf
    out = tmp_path / "x.npy"
    result = _cli("export", good, "-e", "hashing-ngrams", "-o", out)
    assert result.exit_code == 2 and "NaN or infinite" in result.output and not out.exists()
    assert not list(tmp_path.glob(".x.npy*"))  # no partial file left behind
    checked = _cli("check", good, "--json")
    assert checked.exit_code == 1
    assert list(json.loads(checked.output)["nonfinite"].values()) == [2]
    forced = _cli("export", good, "-e", "hashing-ngrams", "-o", out, "--allow-nonfinite")
    assert forced.exit_code == 0 and not np.isfinite(np.load(out)).all()


def test_export_into_a_missing_folder_is_one_clear_line(good, tmp_path):
    result = _cli("export", good, "-e", "hashing-ngrams", "-o", tmp_path / "missing" / "out.npy")
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


def test_a_failed_export_keeps_an_existing_output_file(good, tmp_path):
    out = tmp_path / "keep.npy"
    out.write_bytes(b"precious")
    result = _cli("export", good, "-e", "no-such-embedder", "-o", out)
    assert result.exit_code == 2 and out.read_bytes() == b"precious"


def test_check_finds_a_damaged_chunk_that_opening_does_not(good, tmp_path):
    with h5py.File(good, "r") as f:  # with a segment store, the bytes live in a segment file
        values, holder = _values(f), good
        if values.is_virtual:
            source = values.virtual_sources()[0]
            holder = good.parent / source.file_name
            values = h5py.File(holder, "r")[source.dset_name]
        offset = values.id.get_offset() if values.chunks is None else values.id.get_chunk_info(0).byte_offset
        assert values.compression is None
    data = bytearray(holder.read_bytes())
    data[offset:offset + 4] = np.array([np.nan], dtype="f4").tobytes()
    holder.write_bytes(bytes(data))
    assert _cli("info", good).exit_code == 0
    checked = _cli("check", good)
    assert checked.exit_code == 1 and "NaN or infinite" in checked.output


def test_a_file_that_makes_libhdf5_loop_or_crash_is_refused_not_fatal(good, monkeypatch):
    """The fuzz tests found damaged files on which libhdf5 itself loops forever; the child-process
    check turns that (and a crash) into one error. Stand-ins play the looping and crashing library."""
    import signal
    import time

    from embedx.store import verify

    monkeypatch.setattr(verify, "_child_verify", lambda path, allowed, *_: time.sleep(30) or "K")
    assert verify._forked(good, None, 0.5) == "timeout"
    monkeypatch.setattr(verify, "_child_verify", lambda path, allowed, *_: os.kill(os.getpid(), signal.SIGSEGV) or "K")
    assert verify._forked(good, None, 5) == f"signal {signal.SIGSEGV}"
    verify._VERIFIED.clear()
    for outcome, match in (("timeout", "did not finish within"), (f"signal {signal.SIGSEGV}", "crashes the HDF5")):
        monkeypatch.setattr(verify, "_forked", lambda path, allowed, limit, *_, o=outcome: o)
        monkeypatch.setattr(verify, "_spawned", lambda path, allowed, limit, *_, o=outcome: o)
        with pytest.raises(StoreError, match=match):
            verify.verify_isolated(good, timeout=1)


def test_the_check_forks_only_a_single_threaded_process_and_spawns_otherwise(good, tmp_path, monkeypatch):
    """A fork copies locks other threads hold (Ray's, torch's, a progress bar's): with a second thread alive the
    check runs in a fresh interpreter, and still refuses a hostile file there."""
    import threading

    from embedx.store import verify

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["d"] = np.zeros((3, 8), dtype="f4")
    _replace_values(good, lambda g, shape, dtype: g.__setitem__("values", h5py.ExternalLink(str(other), "/d")))
    used: list[str] = []
    for name in ("_forked", "_spawned"):
        real = getattr(verify, name)
        monkeypatch.setattr(verify, name, lambda *args, _real=real, _name=name: used.append(_name) or _real(*args))
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not verify._single_threaded()
        verify._VERIFIED.clear()
        with pytest.raises(StoreError, match="external link"):
            verify.verify_isolated(good, good.with_name(good.name + ".segments"), timeout=60)
    finally:
        stop.set()
        thread.join()
    assert used == ["_spawned"]


def test_the_child_check_runs_once_per_file_version(good):
    from embedx.store import verify

    verify._VERIFIED.clear()
    verify.verify_isolated(good, good.with_name(good.name + ".segments"))
    assert verify.is_verified(good, good.with_name(good.name + ".segments"))
    with h5py.File(good, "r+") as f:  # a new version of the file that embedx did not write
        f.attrs["note"] = "edited"
    assert not verify.is_verified(good, good.with_name(good.name + ".segments"))
