"""A feature file renamed after it was written is refused with one message that says how to fix it."""

from __future__ import annotations

import os

import pytest

import embedx
from embedx.errors import StoreError


def test_a_renamed_file_names_the_folder_it_reads_and_the_fix(registry, tmp_path):
    original = tmp_path / "features.h5"
    embedx.extract(["a b", "c"], "word-stats", original)
    renamed = tmp_path / "shared.h5"
    for move_folder in (False, True):
        os.replace(original, renamed)
        if move_folder:
            os.replace(tmp_path / "features.h5.segments", tmp_path / "shared.h5.segments")
        for attempt in (lambda: embedx.open_store(renamed), lambda: embedx.extract(["z"], "word-stats", renamed)):
            with pytest.raises(StoreError, match=r"shared.h5 was renamed: it was written as features.h5, .* "
                                                 r"folder features.h5.segments/ .*Rename it back to features.h5"):
                attempt()
        os.replace(renamed, original)  # the fix the message gives
        if move_folder:
            os.replace(tmp_path / "shared.h5.segments", tmp_path / "features.h5.segments")
        with embedx.open_store(original) as store:
            assert store.feature_set("word-stats").vectors(["c", "a b"])[:, 0].tolist() == [1, 2]
    moved = tmp_path / "elsewhere"  # the pair moved together, names kept: still reads
    moved.mkdir()
    os.replace(original, moved / "features.h5")
    os.replace(tmp_path / "features.h5.segments", moved / "features.h5.segments")
    with embedx.open_store(moved / "features.h5") as store:
        assert len(store.feature_set("word-stats")) == 2
