"""replace_folder: the output folder is the old one or the new one, never missing, on both code paths."""

from __future__ import annotations

import os

import pytest

from embedx_tfhub import folders
from embedx_tfhub.folders import backup_path, recover_folder, replace_folder, staging_folder


def _folder(path, text):
    path.mkdir(parents=True)
    (path / "file.txt").write_text(text)
    return path


@pytest.fixture(params=["exchange", "fallback"])
def mode(request, monkeypatch):
    if request.param == "fallback":
        monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    elif folders._exchange_function() is None:
        pytest.skip("no renameat2 in this C library")
    return request.param


def test_replaces_an_existing_folder_and_leaves_nothing_beside_it(tmp_path, mode):
    target = _folder(tmp_path / "out" / "module", "old")
    with staging_folder(target) as staging:
        new = _folder(staging / "module", "new")
        replace_folder(new, target)
        assert not new.exists()
    assert (target / "file.txt").read_text() == "new"
    assert os.listdir(target.parent) == ["module"]


def test_creates_a_missing_target(tmp_path, mode):
    target = tmp_path / "module"
    new = _folder(tmp_path / "staged", "new")
    replace_folder(new, target)
    assert (target / "file.txt").read_text() == "new" and not new.exists()


def test_the_target_exists_at_every_rename(tmp_path, mode, monkeypatch):
    target = _folder(tmp_path / "module", "old")
    new = _folder(tmp_path / "staged", "new")
    seen = []
    rename = os.rename

    def watching(src, dst):
        seen.append(target.exists())
        rename(src, dst)
        seen.append(target.exists())

    monkeypatch.setattr(folders.os, "rename", watching)
    replace_folder(new, target)
    if mode == "exchange":
        assert seen == []  # one atomic swap, no rename at all
    else:
        assert seen == [True, False, False, True]  # the one gap, repaired by recover_folder if it crashes there
    assert (target / "file.txt").read_text() == "new"


def test_a_crash_between_the_fallback_renames_is_undone_by_the_next_call(tmp_path):
    target = tmp_path / "module"
    _folder(backup_path(target), "old")  # the old folder parked, the new one never renamed in
    recover_folder(target)
    assert (target / "file.txt").read_text() == "old" and not backup_path(target).exists()
    _folder(backup_path(target), "stale")  # a leftover beside a complete target is dropped
    with staging_folder(target):
        pass
    assert (target / "file.txt").read_text() == "old" and not backup_path(target).exists()
