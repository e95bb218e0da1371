"""The exported TF Hub text-embedding module: numerics, OOV buckets, fine-tuning, any vector file."""

from __future__ import annotations

import numpy as np
import pytest

from embedx.plugin_api import EmbedxError, OptionError
from embedx_swivel.export import export_module, prepare_vocabulary, read_metadata
from embedx_swivel.tokenizer import tokenize
from embedx_swivel.vectors import load_vectors, vectors_from_module

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "US", "good", "bad", "film", "Cat"]
SENTENCES = ["the cat", "The, cat!!", "", "...", "U.S. dog unknownword", "  the\tcat\n", "«cat» — dog…",
             "cat cat cat", "good film", "bad\u00a0film", "Cat cat CAT", "a b c d e f g"]
BUCKETS = 3


@pytest.fixture(scope="module")
def tf():
    from embedx_tfhub import _tf

    return _tf.tensorflow()


@pytest.fixture(scope="module")
def hub(tf):
    from embedx_tfhub import _tf

    return _tf.hub()


@pytest.fixture(scope="module")
def vectors():
    return np.random.default_rng(7).normal(size=(len(WORDS), 6)).astype(np.float32)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory, vectors):
    out = tmp_path_factory.mktemp("swivel") / "module"
    export_module(WORDS, vectors, out, num_oov_buckets=BUCKETS)
    return out


def sqrtn_in_numpy(sentence: str, words: list[str], vectors: np.ndarray, lowercase: bool = False) -> np.ndarray:
    """What the module must compute: known tokens summed, divided by sqrt(all tokens); OOV rows are zero."""
    tokens = tokenize(sentence, lowercase) or [""]
    index = {w: i for i, w in enumerate(words)}
    total = sum((vectors[index[t]] for t in tokens if t in index), np.zeros(vectors.shape[1], np.float32))
    return total / np.sqrt(len(tokens))


def test_module_equals_sqrtn_of_the_vectors_in_numpy(hub, tf, module_dir, vectors):
    module = hub.load(str(module_dir))
    got = module(tf.constant(SENTENCES)).numpy()
    expected = np.stack([sqrtn_in_numpy(s, WORDS, vectors) for s in SENTENCES])
    assert got.shape == (len(SENTENCES), 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not got[2].any() and not got[3].any()  # empty and punctuation-only: the zero OOV bucket
    signature = module.signatures["default"](default=tf.constant(SENTENCES[:2]))["default"].numpy()
    np.testing.assert_allclose(signature, got[:2], rtol=1e-6)
    assert module(tf.constant([], dtype=tf.string)).numpy().shape == (0, 6)
    assert not module(tf.constant(["", "!"])).numpy().any()  # a batch of empty sentences only


def test_module_exposes_variables_assets_and_metadata(hub, module_dir):
    module = hub.load(str(module_dir))
    assert [v.shape.as_list() for v in module.trainable_variables] == [[len(WORDS) + BUCKETS, 6]]
    assert len(module.variables) == 1 and list(module.regularization_losses) == []
    assert not module.embeddings.numpy()[len(WORDS):].any()
    assert (module_dir / "assets" / "tokens.txt").read_text().splitlines() == WORDS
    meta = read_metadata(module_dir)
    assert meta["num_oov_buckets"] == BUCKETS and meta["tokenizer"]["lowercase"] is False and meta["dim"] == 6


def test_oov_words_hash_into_buckets_and_empty_is_a_bucket(hub, tf, module_dir):
    module = hub.load(str(module_dir))
    filled = np.arange(BUCKETS * 6, dtype=np.float32).reshape(BUCKETS, 6) + 1
    module.embeddings[len(WORDS):].assign(filled)
    words = ["unknownword", "zebra", ""]
    buckets = tf.strings.to_hash_bucket_fast(words, BUCKETS).numpy()  # the table hashes with Fingerprint64
    np.testing.assert_allclose(module(tf.constant(words)).numpy(), filled[buckets])
    np.testing.assert_allclose(module(tf.constant(["?!"])).numpy()[0], filled[buckets[2]])


def test_lowercasing_module(hub, tf, tmp_path, vectors):
    words = ["the", "cat", "dog"]
    export_module(words, vectors[:3], tmp_path / "m", lowercase=True)
    module = hub.load(str(tmp_path / "m"))
    got = module(tf.constant(["The CAT", "the cat", "ÉTÉ dog"])).numpy()
    np.testing.assert_allclose(got[0], got[1])
    np.testing.assert_allclose(got[2], sqrtn_in_numpy("ÉTÉ dog", words, vectors[:3], lowercase=True), rtol=1e-6)
    assert read_metadata(tmp_path / "m")["tokenizer"]["lowercase"] is True


def _fine_tune(tf, hub, module_dir, trainable: bool):
    from embedx_tfhub import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    layer = hub.KerasLayer(str(module_dir), input_shape=[], dtype=tf.string, trainable=trainable)
    model = keras.Sequential([layer, keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    texts = ["good film", "good cat", "the good dog", "bad film", "bad mat", "the bad cat"] * 4
    labels = np.array([1, 1, 1, 0, 0, 0] * 4, dtype=np.float32)
    before = layer.weights[0].numpy().copy()
    dense_before = model.layers[1].kernel.numpy().copy()
    model.fit(tf.constant(texts), labels, epochs=3, batch_size=8, verbose=0)
    return layer, before, layer.weights[0].numpy(), dense_before, model.layers[1].kernel.numpy()


def test_keras_layer_fine_tunes_the_embeddings_only_when_trainable(tf, hub, module_dir):
    layer, before, after, _, _ = _fine_tune(tf, hub, module_dir, trainable=True)
    assert [w.shape.as_list() for w in layer.trainable_weights] == [[len(WORDS) + BUCKETS, 6]]
    changed = np.abs(after - before).max(axis=1) > 0
    assert changed[[WORDS.index("good"), WORDS.index("bad"), WORDS.index("film")]].all()
    assert not changed[WORDS.index("sat")]  # never in a training sentence: Adam leaves its row alone

    frozen, before, after, dense_before, dense_after = _fine_tune(tf, hub, module_dir, trainable=False)
    assert frozen.trainable_weights == [] and np.array_equal(before, after)
    assert not np.array_equal(dense_before, dense_after)  # the head did train


def test_prepare_vocabulary_keeps_first_of_words_that_normalise_alike():
    words = ["the", ",", "U.S.", "us", "New York", "don't", "dont", "The"]
    kept, table, report = prepare_vocabulary(words, np.arange(8, dtype=np.float32)[:, None], lowercase=True)
    assert kept == ["the", "us", "dont"] and table.ravel().tolist() == [0, 2, 5]
    assert (report.kept, report.dropped_empty, report.dropped_multiword, report.merged) == (3, 1, 1, 3)


@pytest.mark.parametrize("name, fmt", [("test_glove.txt", "auto"), ("euclidean_vectors.bin", "word2vec-bin")])
def test_any_vector_file_exports(hub, tf, tmp_path, name, fmt):
    from gensim.test.utils import datapath

    words, matrix = load_vectors(datapath(name), fmt)
    lowercase = all(w == w.lower() for w in words)
    kept, table, _ = prepare_vocabulary(words, matrix, lowercase)
    export_module(kept, table, tmp_path / "m", lowercase=lowercase)
    module = hub.load(str(tmp_path / "m"))
    probe = kept[:5]
    np.testing.assert_allclose(module(tf.constant(probe)).numpy(), table[:5], rtol=1e-6)
    sentence = " ".join(kept[1:4])
    np.testing.assert_allclose(module(tf.constant([sentence])).numpy()[0], table[1:4].sum(0) / np.sqrt(3), rtol=1e-5)
    read_words, read_vectors = vectors_from_module(tmp_path / "m")
    assert read_words == kept
    np.testing.assert_allclose(read_vectors, table, rtol=1e-6)


def test_export_refuses_bad_input(tmp_path, vectors):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(OptionError, match="not empty"):
        export_module(WORDS, vectors, tmp_path / "busy")
    with pytest.raises(OptionError, match="num_oov_buckets"):
        export_module(WORDS, vectors, tmp_path / "m", num_oov_buckets=0)
    with pytest.raises(EmbedxError, match="tokenizer form"):
        export_module(["U.S."], vectors[:1], tmp_path / "m")
    with pytest.raises(EmbedxError, match="duplicate"):
        export_module(["a", "a"], vectors[:2], tmp_path / "m")
    with pytest.raises(EmbedxError, match="NaN"):
        export_module(["a"], np.full((1, 6), np.nan), tmp_path / "m")
    with pytest.raises(EmbedxError, match="not found"):
        load_vectors(str(tmp_path / "missing.vec"))
    (tmp_path / "junk.txt").write_text("2 3\nword 1 2\n")
    # refused before gensim allocates (check_vector_sizes, plugin API 1.3), or by the reader itself
    with pytest.raises(EmbedxError, match="cannot read|refusing to read"):
        load_vectors(str(tmp_path / "junk.txt"))
    assert not (tmp_path / "m").exists()


def test_overwrite_replaces_a_module_whole(hub, tf, tmp_path, vectors):
    export_module(WORDS, vectors, tmp_path / "m")
    export_module(["x", "y"], vectors[:2] * 2, tmp_path / "m", overwrite=True)
    module = hub.load(str(tmp_path / "m"))
    np.testing.assert_allclose(module(tf.constant(["x"])).numpy()[0], vectors[0] * 2, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folders left behind


def test_module_serves_the_tfhub_text_embedder(tmp_path, module_dir, vectors):
    import embedx

    got = embedx.embed(SENTENCES[:3], "tfhub-text", tmp_path / "f.h5", options={"model": str(module_dir)})
    expected = np.stack([sqrtn_in_numpy(s, WORDS, vectors) for s in SENTENCES[:3]])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_exporting_the_same_vectors_twice_gives_the_same_module_digest(tmp_path, vectors):
    """Each export in a fresh process, as after a seeded retrain: the module's identity (the key of every cached
    feature and benchmark unit built on it) must not change. It did, through fingerprint.pb's random UUID and a
    lookup table named after an object's memory address."""
    import subprocess
    import sys

    from embedx.plugin_api import folder_digest

    np.save(tmp_path / "vectors.npy", vectors)
    code = ("import sys, numpy as np\n"
            "from embedx_swivel.export import export_module\n"
            f"export_module({WORDS!r}, np.load(sys.argv[1]), sys.argv[2])\n")
    for name in ("a", "b"):
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "vectors.npy"), str(tmp_path / name)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "a" / "saved_model.pb").read_bytes() == (tmp_path / "b" / "saved_model.pb").read_bytes()
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
