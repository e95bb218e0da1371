"""The persistent digest cache: a file is hashed once per version, across processes, never served stale."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys

import pytest

from embedx.files import digests


def test_a_second_process_reuses_the_digest_without_reading_the_file(tmp_path):
    model = tmp_path / "vectors.bin"
    model.write_bytes(os.urandom(1 << 20))
    expected = hashlib.sha256(model.read_bytes()).hexdigest()
    assert digests.cached_file_digest(model) == expected
    # A new process whose hashing function fails: it must answer from the on-disk cache.
    code = ("import sys, embedx.files.digests as d\n"
            "d.file_digest = lambda path: (_ for _ in ()).throw(AssertionError('re-hashed'))\n"
            "print(d.cached_file_digest(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_an_edited_file_is_hashed_again(tmp_path, monkeypatch):
    model = tmp_path / "vectors.bin"
    model.write_bytes(b"a" * 1000)
    first = digests.cached_file_digest(model)
    model.write_bytes(b"b" * 1001)
    digests.forget_in_memory()
    assert digests.cached_file_digest(model) == hashlib.sha256(b"b" * 1001).hexdigest() != first
    with sqlite3.connect(digests.cache_root() / digests.DB_NAME) as db:  # older versions of the file are dropped
        assert db.execute("SELECT COUNT(*) FROM digests WHERE path=?", (os.path.realpath(model),)).fetchone()[0] == 1


def test_a_broken_or_unwritable_cache_costs_a_rehash_not_a_failure(tmp_path, monkeypatch):
    model = tmp_path / "vectors.bin"
    model.write_bytes(b"x" * 10)
    monkeypatch.setenv(digests.ENV, str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / digests.DB_NAME).write_bytes(b"this is not sqlite" * 100)
    digests.forget_in_memory()
    assert digests.cached_file_digest(model) == hashlib.sha256(b"x" * 10).hexdigest()
    monkeypatch.setenv(digests.ENV, str(tmp_path / "cache" / digests.DB_NAME / "not-a-folder"))
    digests.forget_in_memory()
    assert digests.cached_file_digest(model) == hashlib.sha256(b"x" * 10).hexdigest()


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        digests.cached_file_digest(tmp_path / "nope.bin")


def test_a_savedmodel_fingerprint_is_left_out_of_its_folder_digest(tmp_path):
    """TensorFlow writes a random UUID into fingerprint.pb on every save; the model is the other files."""
    module = tmp_path / "module"
    (module / "variables").mkdir(parents=True)
    (module / "saved_model.pb").write_bytes(b"graph")
    (module / "variables" / "variables.index").write_bytes(b"weights")
    (module / "fingerprint.pb").write_bytes(b"uuid 1")
    first = digests.folder_digest(module)
    (module / "fingerprint.pb").write_bytes(b"uuid 2, another save")
    assert digests.folder_digest(module) == first
    (module / "variables" / "variables.index").write_bytes(b"retrained weights")
    assert digests.folder_digest(module) != first
    # without a saved_model.pb beside it, a file named fingerprint.pb is ordinary content
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "fingerprint.pb").write_bytes(b"a")
    before = digests.folder_digest(plain)
    (plain / "fingerprint.pb").write_bytes(b"b")
    assert digests.folder_digest(plain) != before


def test_a_folder_digest_never_follows_a_link_out_nor_opens_a_fifo(tmp_path):
    import os
    import threading

    from embedx.files.digests import folder_digest

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 100)
    outside = tmp_path / "secret.txt"
    outside.write_text("first")
    os.symlink(outside, model / "vocab.txt")
    os.mkfifo(model / "pipe")
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(folder_digest(model)), daemon=True)
    worker.start()
    worker.join(30)
    assert result, "the digest blocked on the FIFO"
    outside.write_text("changed, and never read")
    assert folder_digest(model) == result[0]  # the link's target is not part of the folder's identity
