"""Token outputs through every reader and export: padded batches with masks, ragged forms, layers, round trips.

The fast tests use the fake token embedders of ``fakes.py`` (token vectors ``[len(word), position]``), so
every expected value is computed here from the words. The torch and Keras taggers run on a real store
made with the packaged MiniLM (offline).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import embedx
from embedx.cli import app
from embedx.contract.errors import OptionError, StoreError
from embedx.readers import iter_numpy, iter_token_batches

TEXTS = ["a b c d e", "one", "", "the quick brown fox", "one", "café ü", "many words in this one here ok", "z"]
LABELS = ["long", "short", "short", "long", "short", "short", "long", "short"]


def words(text: str) -> list[str]:
    return text.split()


@pytest.fixture
def store(registry, tmp_path):
    path = tmp_path / "tok.h5"
    embedx.extract(TEXTS, "word-stats", path, name="t", outputs=["doc", "tokens"], columns={"label": LABELS})
    return path


def expected(text: str) -> np.ndarray:
    return np.array([[len(w), i] for i, w in enumerate(words(text))], dtype=np.float32).reshape(-1, 2)


def test_padded_batches_in_input_order_with_masks_labels_and_keys(store):
    batches = iter_token_batches(store, "word-stats", labels="label", batch_size=3, with_tokens=True)
    assert len(batches) == 3 and batches.classes == ["long", "short"]
    seen = 0
    for values, mask, y, keys in batches:
        b = len(mask)
        texts = TEXTS[seen:seen + b]
        assert values.shape == (b, max(len(words(t)) for t in texts), 2) and mask.dtype == bool
        for i, text in enumerate(texts):
            n = len(words(text))
            assert mask[i].tolist() == [True] * n + [False] * (mask.shape[1] - n)
            assert np.array_equal(values[i, :n], expected(text)) and not values[i, n:].any()
            assert keys[i].decode() == embedx.pipeline.keys.content_key(text)
        assert [batches.classes[c] for c in y] == LABELS[seen:seen + b]
        seen += b
    assert seen == len(TEXTS)
    first = next(iter(batches))
    assert first.tokens == [words(t) for t in TEXTS[:3]] and first.rows.tolist() == [0, 1, 2]


def test_left_padding_and_a_length_cap(store):
    batch = next(iter(iter_token_batches(store, "word-stats", batch_size=4, padding="left", max_tokens=3,
                                         with_tokens=True)))
    assert batch.values.shape == (4, 3, 2)
    assert batch.mask.tolist() == [[True] * 3, [False, False, True], [False] * 3, [True] * 3]
    assert np.array_equal(batch.values[0], expected(TEXTS[0])[:3])  # the first tokens are kept
    assert np.array_equal(batch.values[1, 2], expected("one")[0]) and not batch.values[1, :2].any()
    assert batch.tokens[3] == ["the", "quick", "brown"]
    with pytest.raises(OptionError, match="padding='middle'"):
        iter_token_batches(store, "word-stats", padding="middle")
    with pytest.raises(OptionError, match="max_tokens=0"):
        iter_token_batches(store, "word-stats", max_tokens=0)


def test_bucketing_yields_every_row_once_with_less_padding(store):
    plain = list(iter_token_batches(store, "word-stats", batch_size=2))
    bucketed = iter_token_batches(store, "word-stats", batch_size=2, bucket=True, bucket_window=4)
    got = list(bucketed)
    assert len(got) == len(plain) == len(bucketed) == 4
    rows = np.concatenate([b.rows for b in got])
    assert sorted(rows.tolist()) == list(range(len(TEXTS))) and rows.tolist() != list(range(len(TEXTS)))
    for b in got:  # each row's values still belong to its own text
        for i, row in enumerate(b.rows):
            assert np.array_equal(b.values[i][b.mask[i]], expected(TEXTS[row]))
    padding = [sum(int((~b.mask).sum()) for b in batches) for batches in (plain, got)]
    assert padding[1] < padding[0]


def test_duplicates_repeat_and_texts_pick_rows(store):
    batch = next(iter(iter_token_batches(store, "word-stats", texts=["one", "z", "one"], batch_size=8)))
    assert batch.mask.sum(1).tolist() == [1, 1, 1]
    assert batch.keys[0] == batch.keys[2] != batch.keys[1]


def test_per_layer_selection_and_mix(registry, tmp_path):
    path = tmp_path / "layers.h5"
    texts = ["ab cde", "f"]
    embedx.extract(texts, "layered", path, name="l")
    full = next(iter(iter_token_batches(path, "layered", output="layers")))
    assert full.values.shape == (2, 2, 3, 2)
    assert full.values[0, 1, :, 0].tolist() == [3, 3, 3] and full.values[0, 1, :, 1].tolist() == [0, 1, 2]
    last = next(iter(iter_token_batches(path, "layered", output="layers", layers=-1)))
    assert last.values.shape == (2, 2, 2) and np.array_equal(last.values, full.values[:, :, 2])
    two = next(iter(iter_token_batches(path, "layered", output="layers", layers=[0, 2])))
    assert np.array_equal(two.values, full.values[:, :, [0, 2]])
    mix = next(iter(iter_token_batches(path, "layered", output="layers", layer_weights=[0.5, 0.25, 0.25])))
    assert np.allclose(mix.values, np.tensordot(full.values, [0.5, 0.25, 0.25], axes=([2], [0])))
    import pickle

    from embedx.features.tokens import TokenRows

    reader = pickle.loads(pickle.dumps(TokenRows(path, "layered", output="layers", layers=[0, 2])))
    assert np.array_equal(reader.values(np.array([0]))[0], full.values[0, :, [0, 2]].transpose(1, 0, 2))
    with pytest.raises(OptionError, match="has 3 layers"):
        iter_token_batches(path, "layered", output="layers", layers=[3])
    with pytest.raises(OptionError, match="give 3 finite numbers"):
        iter_token_batches(path, "layered", output="layers", layer_weights=[1, 2])
    with pytest.raises(StoreError, match="is document-level, not token-level"):
        iter_token_batches(path, "layered", output="pooled")


def test_config_hash_picks_a_configuration_in_every_reader(registry, tmp_path):
    path = tmp_path / "two.h5"
    embedx.extract(TEXTS[:3], "word-stats", path, name="t", outputs=["doc", "tokens"], options={"scale": 1.0})
    embedx.extract(TEXTS[:3], "word-stats", path, name="t", outputs=["doc", "tokens"], options={"scale": 3.0})
    with embedx.open_store(path) as s:
        hashes = {json.dumps(x.config["options"], sort_keys=True): x.config_hash for x in s.sets()}
    three = next(h for k, h in hashes.items() if '"scale": 3.0' in k)
    with pytest.raises(StoreError, match="config_hash="):
        iter_numpy(path, "word-stats")
    X, _ = next(iter(iter_numpy(path, "word-stats", config_hash=three[:8])))
    assert X[:, 3].tolist() == [3, 3, 3]
    batches = iter_token_batches(path, "word-stats", config_hash=three[:8])
    assert next(iter(batches)).mask.sum(1).tolist() == [5, 1, 0]


def test_document_readers_name_the_token_readers_and_give_class_names(store):
    with pytest.raises(StoreError, match="token-level: read it with embedx.readers.iter_token_batches"):
        iter_numpy(store, "word-stats", output="tokens")
    chunks = iter_numpy(store, "word-stats", labels="label", chunk_size=5)
    assert chunks.classes == ["long", "short"] and len(chunks) == 2
    y = np.concatenate([y for _, y in chunks])
    assert [chunks.classes[c] for c in y] == LABELS


def test_to_pandas_has_input_rows_columns_and_vectors(store):
    with embedx.open_store(store) as s:
        fs = s.feature_set("word-stats")
        frame = fs.to_pandas()
        tokens = fs.to_pandas(output="tokens")
    assert frame.index.name == "row" and list(frame.index) == list(range(len(TEXTS)))
    assert list(frame.columns) == ["line", "text", "label", "key", "vector"]
    assert frame["text"].tolist() == TEXTS and frame["label"].tolist() == LABELS
    assert frame["vector"][3].tolist() == [4, len(TEXTS[3]), np.mean([3, 5, 5, 3]), 1]
    assert tokens["tokens"][6] == words(TEXTS[6]) and np.array_equal(tokens["vector"][6], expected(TEXTS[6]))


def _export(store, target, *extra):
    result = CliRunner().invoke(app, ["export", str(store), "-e", "word-stats", "-o", str(target), *extra])
    assert result.exit_code == 0, result.output
    return result


def test_token_export_round_trips_npz_and_parquet(store, tmp_path):
    with embedx.open_store(store) as s:
        fs = s.feature_set("word-stats")
        stored = fs.tokens(input="t")
        config = fs.info.config
    _export(store, tmp_path / "tok.npz", "--output-name", "tokens")
    with np.load(tmp_path / "tok.npz", allow_pickle=False) as saved:
        values, offsets, toks = saved["values"], saved["offsets"], saved["tokens"]
        assert saved["label"].tolist() == LABELS and saved["line"].tolist() == list(range(1, len(TEXTS) + 1))
        assert [k.encode() for k in saved["key"].tolist()] == [embedx.pipeline.keys.content_key(t).encode()
                                                                for t in TEXTS]
        assert json.loads(str(saved["meta"]))["config"] == config
    assert len(offsets) == len(TEXTS) + 1
    for i, (words_i, vectors_i) in enumerate(stored):
        assert np.array_equal(values[offsets[i]:offsets[i + 1]], vectors_i)
        assert toks[offsets[i]:offsets[i + 1]].tolist() == words_i

    import pyarrow.parquet as pq

    _export(store, tmp_path / "tok.parquet", "--output-name", "tokens")
    table = pq.read_table(tmp_path / "tok.parquet")
    meta = json.loads(table.schema.metadata[b"embedx"])
    assert meta["config"] == config and meta["output"]["name"] == "tokens" and meta["input"] == "t"
    assert table.column("tokens").to_pylist() == [w for w, _ in stored]
    for row, (_, vectors_i) in zip(table.column("vector").to_pylist(), stored, strict=True):
        assert np.array_equal(np.array(row, dtype=np.float32).reshape(-1, 2), vectors_i)
    assert table.column("label").to_pylist() == LABELS and len(table.column("key")) == len(TEXTS)

    refused = CliRunner().invoke(app, ["export", str(store), "-e", "word-stats", "-o", str(tmp_path / "t.csv"),
                                       "--output-name", "tokens"])
    assert refused.exit_code != 0 and "export it to .npz" in refused.output and "Traceback" not in refused.output


def test_document_export_layouts_and_provenance(store, tmp_path):
    import pyarrow.parquet as pq

    _export(store, tmp_path / "wide.parquet")  # the default, as for .csv
    _export(store, tmp_path / "list.csv", "--layout", "list")
    _export(store, tmp_path / "list.parquet", "--layout", "list")
    wide, listed = pq.read_table(tmp_path / "wide.parquet"), pq.read_table(tmp_path / "list.parquet")
    assert wide.column_names == ["line", "label", "key", "f0", "f1", "f2", "f3"]
    assert listed.column_names == ["line", "label", "key", "vector"]
    assert json.loads(listed.schema.metadata[b"embedx"])["embedder"] == "word-stats"
    vectors = np.array(listed.column("vector").to_pylist())
    assert np.array_equal(np.column_stack([wide.column(f"f{i}").to_numpy() for i in range(4)]), vectors)
    lines = (tmp_path / "list.csv").read_text().splitlines()
    assert lines[0] == "line,label,key,vector" and np.allclose(json.loads(lines[1].split(",", 3)[3].strip('"')),
                                                               vectors[0])
    assert lines[1].split(",")[2] == listed.column("key")[0].as_py()


def test_an_input_column_named_like_an_export_field_is_refused(registry, tmp_path):
    path = tmp_path / "clash.h5"
    embedx.extract(["a b", "c"], "word-stats", path, name="c", outputs=["doc", "tokens"], columns={"offsets": [1, 2]})
    _export(path, tmp_path / "doc.npz")  # only token exports write offsets
    result = CliRunner().invoke(app, ["export", str(path), "-e", "word-stats", "-o", str(tmp_path / "tok.npz"),
                                      "--output-name", "tokens"])
    assert result.exit_code == 2 and "input column 'offsets'" in result.output and not (tmp_path / "tok.npz").exists()


# --- a real store: MiniLM (packaged, offline), word pieces, last layer and every layer -------------------------

@pytest.fixture(scope="module")
def minilm_store(tmp_path_factory):
    """One file, two configurations of minilm-l6's tokens output: the last layer, and all 7 layers stored."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from gensim.test.utils import datapath

    from embedx.plugin_api.testing import installed_registry

    registry = installed_registry({"minilm-l6"}, "pip install -e plugins/embedx-transformers first")
    lines = open(datapath("lee_background.cor"), encoding="utf-8").read().splitlines()
    texts = [s.strip() for line in lines[10:30] for s in line.split(". ") if 3 < len(s.split()) < 40][:40]
    texts = texts + texts[:3]  # duplicates, repeated by every reader
    path = tmp_path_factory.mktemp("minilm") / "tokens.h5"
    last = embedx.extract(texts, "minilm-l6", path, name="lee", outputs=["tokens"], registry=registry,
                          options={"max_length": 48})
    every = embedx.extract(texts, "minilm-l6", path, name="lee", outputs=["tokens"], registry=registry,
                           options={"max_length": 48, "layers": "all"})
    return path, texts, last.config_hash, every.config_hash


def _stored(path, config_hash):
    """Per input row: word pieces, vectors and the length its offsets give, read with plain h5py."""
    import h5py

    with embedx.open_store(path) as s:
        fs = s.feature_set("minilm-l6", config_hash)
        pairs, name = fs.tokens(input="lee"), fs.info.name
    with h5py.File(path, "r") as f:
        group = f["sets"][name]
        row_of = {k: i for i, k in enumerate(group["keys"][:])}
        offsets = group["tokens/offsets"][:]
        rows = [row_of[k] for k in f["inputs/lee/keys"][:]]
    return pairs, np.array([offsets[r + 1] - offsets[r] for r in rows])


def _continuation(tokens: list[str]) -> list[int]:
    """The tagging task: is this word piece the continuation of a word (``##...``)?"""
    return [int(t.startswith("##")) for t in tokens]


def test_torch_tagger_trains_on_padded_minilm_tokens(minilm_store):
    import torch

    from embedx.readers import torch_token_dataset

    torch.manual_seed(0)
    path, texts, last, every = minilm_store
    for config_hash, layered in ((last, False), (every, True)):
        pairs, lengths = _stored(path, config_hash)
        dataset = torch_token_dataset(path, "minilm-l6", config_hash=config_hash[:10])
        assert dataset.token_shape == ((7, 384) if layered else (384,))
        assert dataset.lengths.tolist() == lengths.tolist() and len(dataset) == len(texts)
        sampler = dataset.batch_sampler(8, bucket=True, window=3)
        assert sorted(i for b in sampler for i in b) == list(range(len(texts)))
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate)
        mix = torch.zeros(7, requires_grad=True)
        head = torch.nn.Linear(384, 2)
        optimizer = torch.optim.Adam([*head.parameters(), mix], lr=0.01)
        losses = []
        for _ in range(3):
            for rows, (values, mask) in zip(sampler, loader, strict=True):
                assert mask.sum(1).tolist() == lengths[rows].tolist()  # the masks are the stored offsets
                for i, r in enumerate(rows):
                    assert torch.equal(values[i][mask[i]], torch.from_numpy(pairs[r][1]))
                if layered:  # a learned softmax mix over the 7 layers, as ELMo's scalar mix
                    values = torch.einsum("btld,l->btd", values, torch.softmax(mix, 0))
                target = torch.zeros(mask.shape, dtype=torch.int64)
                for i, r in enumerate(rows):
                    target[i, :lengths[r]] = torch.tensor(_continuation(pairs[r][0]))
                loss = torch.nn.functional.cross_entropy(head(values)[mask], target[mask])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        assert np.mean(losses[-3:]) < np.mean(losses[:3])
        nested = dataset.collate_ragged(dataset.__getitems__([0, 1]))
        pieces = list(nested.unbind()) if isinstance(nested, torch.Tensor) else nested
        assert [len(p) for p in pieces] == lengths[:2].tolist()
        assert all(torch.equal(p, torch.from_numpy(pairs[i][1])) for i, p in enumerate(pieces))


def test_keras_tagger_fits_padded_minilm_batches_without_running_out(minilm_store, caplog, capsys):
    import warnings

    import tensorflow as tf

    from embedx.readers import tf_token_dataset

    path, texts, last, every = minilm_store
    pairs, lengths = _stored(path, last)
    dataset = tf_token_dataset(path, "minilm-l6", config_hash=last, batch_size=8, bucket=True, with_tokens=True)
    assert int(dataset.cardinality()) == -(-len(texts) // 8)
    seen = []
    for x in dataset:
        seen.extend(x["mask"].numpy().sum(1).tolist())
        tokens, mask = x["tokens"].numpy(), x["mask"].numpy()
        pieces = [[t.decode() for t in row[m]] for row, m in zip(tokens, mask, strict=True)]
        assert all(p in [w for w, _ in pairs] for p in pieces)  # strings and mask line up
    assert sorted(seen) == sorted(lengths.tolist())

    def as_tags(x):
        tags = tf.cast(tf.strings.regex_full_match(x["tokens"], "##.*"), tf.int32)
        return x["values"], tags, tf.cast(x["mask"], tf.float32)

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input(shape=(None, 384)), tf.keras.layers.Dense(2)])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(dataset.map(as_tags), epochs=2, verbose=0)
    said = " ".join(str(w.message) for w in caught) + caplog.text + "".join(capsys.readouterr())
    assert "ran out of data" not in said
    assert len(history.history["loss"]) == 2 and history.history["loss"][1] < history.history["loss"][0]

    every_layer = tf_token_dataset(path, "minilm-l6", config_hash=every, batch_size=8, layers=[-1, 0], ragged=True)
    first = next(iter(every_layer))["values"]
    assert isinstance(first, tf.RaggedTensor) and first.shape[2:] == (2, 384)
    assert first.row_lengths().numpy().tolist() == lengths[:8].tolist()
    assert np.array_equal(first[0].numpy()[:, 0], _stored(path, every)[0][0][1][:, -1])


def test_torch_collates_padded_ragged_and_labelled_batches(store):
    import torch

    from embedx.readers import torch_token_dataset

    dataset = torch_token_dataset(store, "word-stats", labels="label", padding="left", max_tokens=4)
    assert dataset.classes == ["long", "short"] and dataset.lengths.tolist() == [4, 1, 0, 4, 1, 2, 4, 1]
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=dataset.collate)
    values, mask, y = next(iter(loader))
    assert values.shape == (3, 4, 2) and mask.tolist()[1] == [False, False, False, True]
    assert torch.equal(values[1, 3], torch.tensor([3.0, 0.0])) and y.tolist() == [0, 1, 1]
    ragged, y = dataset.collate_ragged(dataset.__getitems__([0, 2]))
    pieces = list(ragged.unbind()) if isinstance(ragged, torch.Tensor) else ragged
    assert [len(p) for p in pieces] == [4, 0] and y.tolist() == [0, 1]
    with pytest.raises(StoreError, match="torch_token_dataset"):
        from embedx.readers import torch_dataset

        torch_dataset(store, "word-stats", output="tokens")


def test_tf_token_batches_padded_ragged_and_labelled(store):
    import tensorflow as tf

    from embedx.readers import tf_dataset, tf_token_dataset

    padded = tf_token_dataset(store, "word-stats", labels="label", batch_size=3, with_tokens=True)
    assert int(padded.cardinality()) == 3 and padded.classes == ["long", "short"]
    x, y = next(iter(padded))
    assert x["values"].shape == (3, 5, 2) and x["mask"].numpy().sum(1).tolist() == [5, 1, 0]
    assert [t.decode() for t in x["tokens"].numpy()[1]] == ["one", "", "", "", ""] and y.numpy().tolist() == [0, 1, 1]
    ragged = tf_token_dataset(store, "word-stats", batch_size=8, ragged=True, with_tokens=True)
    x = next(iter(ragged))
    assert isinstance(x["values"], tf.RaggedTensor) and x["values"].row_lengths().numpy().tolist() == [
        len(words(t)) for t in TEXTS]
    assert [[w.decode() for w in row] for row in x["tokens"].to_list()] == [words(t) for t in TEXTS]
    assert np.array_equal(x["values"][6].numpy(), expected(TEXTS[6]))
    rows = tf_dataset(store, "word-stats", labels="label", chunk_size=3)
    assert int(rows.cardinality()) == len(TEXTS) and rows.classes == ["long", "short"]
