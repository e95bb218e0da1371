"""Corrupt, truncated, empty and foreign files get a clear error, and are never overwritten."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx.cli import app
from embedx.contract.errors import StoreError
from embedx.store import layout as L


@pytest.fixture
def good_file(registry, store_path):
    embedx.extract([f"text {i}" for i in range(500)], "word-stats", store_path, name="t")
    return store_path


def test_text_file_is_not_a_feature_file(tmp_path, registry):
    path = tmp_path / "notes.h5"
    path.write_text("hello")
    with pytest.raises(StoreError, match="notes.h5 is not an HDF5 file"):
        embedx.open_store(path)
    with pytest.raises(StoreError, match="not an HDF5 file"):
        embedx.extract(["a"], "word-stats", path)
    assert path.read_text() == "hello"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="empty.h5 is empty"):
        embedx.open_store(path)


def test_truncated_file(good_file, tmp_path):
    data = good_file.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError, match="cut.h5 is a corrupt or truncated HDF5 file"):
        embedx.open_store(cut)


def test_corrupted_metadata(good_file, tmp_path):
    data = bytearray(good_file.read_bytes())
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.h5"
    for start in (96, 800, 2000):  # superblock and object headers live near the start
        data[start:start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="bad.h5 is (a corrupt|damaged)"):
        with embedx.open_store(bad) as store:
            store.feature_set("word-stats").vectors(input="t")


def test_foreign_hdf5_file_is_refused_and_left_alone(tmp_path, registry):
    path = tmp_path / "theirs.h5"
    with h5py.File(path, "w") as f:
        f["weights"] = np.arange(3)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="HDF5 file but not an embedx feature file .*holds weights"):
        embedx.open_store(path)
    with pytest.raises(StoreError, match="not an embedx feature file"):
        embedx.extract(["a"], "word-stats", path)
    assert path.read_bytes() == before


def test_newer_format_version_asks_for_an_upgrade(good_file):
    with h5py.File(good_file, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="format version 99.*upgrade embedx"):
        embedx.open_store(good_file)


def test_cli_prints_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "x.h5"
    path.write_text("nope")
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 2
    assert "is not an HDF5 file" in result.output and "Traceback" not in result.output


def test_a_damaged_uncommitted_segment_is_set_aside_and_recomputed(registry, store_path, caplog):
    texts = [f"t {i}" for i in range(20)]
    embedx.extract(texts[:5], "word-stats", store_path)
    segments = L.segment_dir(store_path)
    (segments / "set@word-stats@00000099-00000099@deadbeef.h5").write_bytes(b"\x89HDF\r\n\x1a\n not really")
    report = embedx.extract(texts, "word-stats", store_path)
    assert report.computed == 15
    assert any("set aside the unreadable segment" in note for note in report.notes)
    assert "set aside" in caplog.text
    assert (L.quarantine_dir(store_path) / "set@word-stats@00000099-00000099@deadbeef.h5").exists()
    with embedx.open_store(store_path) as store:
        assert len(store.feature_set("word-stats")) == 20
