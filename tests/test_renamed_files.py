"""A feature file renamed after it was written: readers say how to fix it, the writer records the new names."""

from __future__ import annotations

import os

import pytest

import embedx
from embedx.contract.errors import StoreError
from embedx.store.compact import compact

RENAMED = r"shared.h5 was renamed: it was written as features.h5, .* folder features.h5.segments/ .*Rename it back"


def test_a_file_renamed_without_its_folder_names_the_folder_it_reads_and_the_fix(registry, tmp_path):
    original, renamed = tmp_path / "features.h5", tmp_path / "shared.h5"
    embedx.extract(["a b", "c"], "word-stats", original)
    os.replace(original, renamed)
    for attempt in (lambda: embedx.open_store(renamed), lambda: embedx.extract(["z"], "word-stats", renamed),
                    lambda: compact(renamed)):
        with pytest.raises(StoreError, match=RENAMED):
            attempt()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.h5.segments", "shared.h5"]  # nothing touched
    os.replace(renamed, original)  # the fix the message gives
    with embedx.open_store(original) as store:
        assert store.feature_set("word-stats").vectors(["c", "a b"])[:, 0].tolist() == [1, 2]


@pytest.mark.parametrize("writer", ["compact", "extract"])
def test_a_file_renamed_with_its_folder_works_after_one_writer_run(registry, tmp_path, writer):
    original, renamed = tmp_path / "features.h5", tmp_path / "shared.h5"
    embedx.extract(["a b", "c"], "word-stats", original, name="first")
    os.replace(original, renamed)
    os.replace(tmp_path / "features.h5.segments", tmp_path / "shared.h5.segments")
    with pytest.raises(StoreError, match=RENAMED + r".*embedx compact"):
        embedx.open_store(renamed)  # a reader never follows the recorded name into another folder
    if writer == "compact":
        compact(renamed)
    else:
        assert embedx.extract(["c", "d e f"], "word-stats", renamed).computed == 1
    with embedx.open_store(renamed) as store:
        fset = store.feature_set("word-stats")
        assert fset.vectors(["c", "a b"])[:, 0].tolist() == [1, 2]
        assert store.input("first").texts == ["a b", "c"]
        sources = {s.file_name.split("/")[0] for s in fset.group["doc/values"].virtual_sources()}
        assert sources == {"shared.h5.segments"}
    moved = tmp_path / "elsewhere"  # the pair moved together, names kept: still reads
    moved.mkdir()
    os.replace(renamed, moved / "shared.h5")
    os.replace(tmp_path / "shared.h5.segments", moved / "shared.h5.segments")
    with embedx.open_store(moved / "shared.h5") as store:
        assert len(store.feature_set("word-stats")) == 2 + (writer == "extract")
