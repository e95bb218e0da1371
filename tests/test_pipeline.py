"""Extraction through the real pipeline and store, with the fake embedder as the model."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import embedx
from embedx.contract.errors import OptionError, RegistryError, StoreError
from fakes import WordStats

TEXTS = ["the cat sat", "a dog", "the cat sat", "", "birds fly south in winter", "a dog"]


def test_identical_texts_are_computed_once_and_come_back_in_input_order(registry, store_path):
    report = embedx.extract(TEXTS, "word-stats", store_path, name="t")
    assert (report.rows, report.unique, report.computed, report.cached, report.empty) == (6, 4, 4, 0, 1)
    assert sum(len(b) for b in WordStats.calls) == 4
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("word-stats")
        vectors = fset.vectors(TEXTS)
        assert vectors.shape == (6, 4)
        assert vectors[:, 0].tolist() == [3, 2, 3, 0, 5, 2]
        assert np.array_equal(fset.vectors(input="t"), vectors)
        assert store.input("t").empty.tolist() == [False, False, False, True, False, False]


def test_rerun_computes_nothing_and_new_texts_compute_only_themselves(registry, store_path):
    embedx.extract(TEXTS, "word-stats", store_path)
    WordStats.calls.clear()
    again = embedx.extract(TEXTS, "word-stats", store_path)
    assert again.computed == 0 and WordStats.calls == []
    more = embedx.extract(TEXTS + ["brand new text"], "word-stats", store_path)
    assert more.computed == 1 and WordStats.calls == [["brand new text"]]
    with embedx.open_store(store_path) as store:
        assert len(store.feature_set("word-stats")) == 5


def test_batches_are_sorted_by_length_and_order_is_restored(registry, store_path):
    texts = [("w " * n).strip() for n in (1, 9, 3, 7, 5, 2, 8)]
    vectors = embedx.embed(texts, "word-stats", store_path, batch_size=3)
    assert vectors[:, 0].tolist() == [1, 9, 3, 7, 5, 2, 8]
    lengths = [[len(t) for t in batch] for batch in WordStats.calls]
    flat = [n for batch in lengths for n in batch]
    assert flat == sorted(flat, reverse=True)


def test_each_configuration_is_its_own_set(registry, store_path):
    embedx.extract(["x y"], "word-stats", store_path)
    embedx.extract(["x y"], "word-stats", store_path, options={"scale": 3})
    embedx.extract(["x y"], "word-stats-x2", store_path)
    embedx.extract(["x y"], "word-stats", store_path, dtype="float16")
    with embedx.open_store(store_path) as store:
        sets = store.sets()
        assert len(sets) == 4
        assert len({s.config_hash for s in sets}) == 4
        with pytest.raises(StoreError, match="configurations of 'word-stats'") as error:
            store.feature_set("word-stats")
        lines = str(error.value).splitlines()[1:]  # one per configuration: short hash, the settings that differ
        by_hash = {s.config_hash[:12]: s for s in sets if s.embedder == "word-stats"}
        assert sorted(line.split(":")[0].strip() for line in lines) == sorted(by_hash)
        for line in lines:
            fs = by_hash[line.split(":")[0].strip()]
            assert f"scale={fs.config['options']['scale']}" in line and f'dtype="{fs.dtype}"' in line
            assert "max_length" not in line  # the same in all three: not listed
        scaled = [s for s in sets if s.config["options"]["scale"] == 3][0]
        assert store.feature_set("word-stats", scaled.config_hash[:8]).vectors(["x y"])[0, 3] == 3
        half = [s for s in sets if s.dtype == "float16"][0]
        assert store.feature_set(half.name).vectors(["x y"]).dtype == np.float16


def test_token_outputs_are_flat_arrays_with_offsets(registry, store_path):
    texts = ["one two three", "", "four", "one two three"]
    embedx.extract(texts, "word-stats", store_path, outputs=["doc", "tokens"], compression="gzip")
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("word-stats")
        result = fset.tokens(texts)
        assert [toks for toks, _ in result] == [["one", "two", "three"], [], ["four"], ["one", "two", "three"]]
        assert result[0][1].tolist() == [[3, 0], [3, 1], [5, 2]]
        assert result[1][1].shape == (0, 2)
        group = store.file[f"sets/{fset.info.name}/tokens"]
        assert group["values"].shape == (4, 2)  # unique texts only: 3 + 0 + 1 token rows
        assert group["offsets"].shape == (4,)
        source = group["values"].virtual_sources()[0]  # rows live in segment files beside the index
        with h5py.File(store_path.parent / source.file_name) as segment:
            assert segment[source.dset_name].compression == "gzip"


def test_per_layer_outputs_keep_a_layer_axis(registry, store_path):
    texts = ["ab c", "d"]
    embedx.extract(texts, "layered", store_path)
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("layered")
        assert fset.vectors(texts).shape == (2, 3, 2)
        toks, values = fset.tokens(texts)[0]
        assert toks == ["ab", "c"] and values.shape == (2, 3, 2)


def test_max_length_truncation_is_counted_and_stored(registry, store_path):
    report = embedx.extract(["a b c d", "a b", "a b c"], "word-stats", store_path, max_length=2)
    assert report.truncated_computed == 2 and report.truncated_input == 2
    with embedx.open_store(store_path) as store:
        assert store.feature_set("word-stats").truncated(["a b c d", "a b"]).tolist() == [2, 0]


def test_max_length_on_an_embedder_without_it_is_refused(registry, store_path):
    with pytest.raises(OptionError, match="no max_length option"):
        embedx.extract(["a"], "layered", store_path, max_length=3)


def test_columns_travel_with_the_input_table(registry, store_path):
    embedx.extract(["a", "b", "c"], "word-stats", store_path, name="mine",
                   columns={"label": ["pos", "neg", "pos"], "score": ["1", "2", "3"], "w": [0.5, 1.5, 2.5],
                            "code": ["007", "1", "2"], "mixed": [0.5, 1, 2.5]})
    with embedx.open_store(store_path) as store:
        table = store.input("mine")
        assert table.column("label").tolist() == ["pos", "neg", "pos"]
        assert table.column("score").dtype == np.int64
        assert table.column("w").dtype == np.float64
        assert table.column("code").tolist() == ["007", "1", "2"]  # typed only when nothing is lost
        assert table.column("mixed").tolist() == ["0.5", "1", "2.5"]
        assert table.texts == ["a", "b", "c"]


def test_options_are_checked_before_anything_runs(registry, store_path):
    with pytest.raises(OptionError, match="has no option 'scael'"):
        embedx.extract(["a"], "word-stats", store_path, options={"scael": 2})
    with pytest.raises(OptionError, match="option 'scale'.*not a valid float"):
        embedx.extract(["a"], "word-stats", store_path, options={"scale": "big"})
    with pytest.raises(RegistryError, match="no embedder 'nope'"):
        embedx.extract(["a"], "nope", store_path)
    with pytest.raises(OptionError, match="no output 'vectors'"):
        embedx.extract(["a"], "word-stats", store_path, outputs=["vectors"])
    assert not store_path.exists()


def test_reading_texts_that_were_never_extracted_is_a_clear_error(registry, store_path):
    embedx.extract(["a"], "word-stats", store_path)
    with embedx.open_store(store_path) as store, pytest.raises(StoreError, match="1 of 2 texts have no features"):
        store.feature_set("word-stats").vectors(["a", "b"])


def test_iter_vectors_reads_in_chunks_in_input_order(registry, store_path):
    texts = [" ".join(["w"] * (i % 17 + 1)) + f" {i}" for i in range(300)]
    embedx.extract(texts, "word-stats", store_path, name="many", batch_size=32)
    with embedx.open_store(store_path) as store:
        fset = store.feature_set("word-stats")
        chunks = list(fset.iter_vectors(input="many", chunk_size=64))
        assert [len(c) for c in chunks] == [64, 64, 64, 64, 44]
        assert np.array_equal(np.concatenate(chunks), fset.vectors(texts))


def test_file_is_self_describing(registry, store_path):
    embedx.extract(["a b"], "word-stats", store_path, name="t")
    with h5py.File(store_path, "r") as f:
        assert f.attrs["format"] == "embedx-features" and f.attrs["format_version"] == 2
        (group,) = f["sets"].values()
        assert group.attrs["embedder"] == "word-stats"
        assert '"scale":1.0' in group.attrs["config"].replace(" ", "")
        assert group["doc/values"].shape == (1, 4)


def test_unkeyed_options_are_recorded_but_not_hashed(registry, store_path, tmp_path):
    class Located(WordStats):
        unkeyed_options = ("fail_on",)

    from embedx.registry import Registered

    registry.embedders["located"] = Registered("located", Located, "fakes")
    first = embedx.extract(["a b"], "located", store_path, options={"fail_on": "/old/place"})
    second = embedx.extract(["a b"], "located", store_path, options={"fail_on": "/new/place"})
    assert first.config_hash == second.config_hash and second.computed == 0
    with embedx.open_store(store_path) as store:
        assert store.sets()[0].config["unkeyed_options"] == {"fail_on": "/old/place"}


def test_a_plugin_whose_load_fails_is_named(registry, store_path):
    class Broken(WordStats):
        def load(self):
            raise KeyError("weights.bin")

    from embedx.contract.errors import EmbedderUnavailable
    from embedx.registry import Registered

    registry.embedders["broken"] = Registered("broken", Broken, "fakes")
    with pytest.raises(EmbedderUnavailable, match=r"'broken' \(plugin 'fakes'\) could not load: KeyError"):
        embedx.extract(["a"], "broken", store_path)


def test_an_embedder_that_cannot_run_here_fails_before_loading(registry, store_path):
    loads = []

    class Unavailable(WordStats):
        missing = True

        def unavailable_reason(self):
            return "hub module not in the cache (run: embedx fetch x)" if Unavailable.missing else None

        def load(self):
            loads.append(1)

    from embedx.contract.errors import EmbedderUnavailable
    from embedx.registry import Registered

    registry.embedders["offline"] = Registered("offline", Unavailable, "fakes")
    with pytest.raises(EmbedderUnavailable, match=r"'offline' \(plugin 'fakes'\) cannot run here: hub module not in"):
        embedx.extract(["a b", "c"], "offline", store_path)
    assert loads == [] and WordStats.calls == []
    Unavailable.missing = False
    assert embedx.extract(["a b", "c"], "offline", store_path).computed == 2 and loads == [1]
    Unavailable.missing = True  # everything cached: the cached features stay usable, no error, no load
    report = embedx.extract(["c", "a b"], "offline", store_path, name="again")
    assert report.computed == 0 and report.cached == 2 and loads == [1]


def test_a_fully_cached_rerun_does_not_rewrite_the_file(registry, store_path):
    embedx.extract(TEXTS, "word-stats", store_path, name="t", columns={"y": list(range(6))})
    before = store_path.stat()
    embedx.extract(TEXTS, "word-stats", store_path, name="t", columns={"y": list(range(6))})
    after = store_path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    embedx.extract(TEXTS, "word-stats", store_path, name="t", columns={"y": [9] * 6})  # new column values
    assert store_path.stat().st_ino != before.st_ino
    with embedx.open_store(store_path) as store:
        assert store.input("t").column("y").tolist() == [9] * 6


def test_the_model_is_loaded_only_once_something_is_missing(registry, store_path, monkeypatch):
    import embedx.pipeline.extraction as extraction

    loads = []
    monkeypatch.setattr(WordStats, "load", lambda self: loads.append(len(WordStats.calls)), raising=False)
    monkeypatch.setattr(extraction, "CHUNK_ROWS", 2)  # several chunks, so "once" and "when" can be seen
    embedx.extract(TEXTS, "word-stats", store_path)
    assert loads == [0]  # once, before the first batch
    again = embedx.extract(TEXTS, "word-stats", store_path, name="again")  # everything cached: never loaded
    assert again.computed == 0 and loads == [0]
    WordStats.calls.clear()
    more = embedx.extract([*TEXTS, "one new text", "the cat sat", "and another"], "word-stats", store_path)
    assert more.computed == 2 and more.cached == 4
    assert loads == [0, 0] and WordStats.calls == [["one new text"], ["and another"]]  # loaded once, for the new ones
