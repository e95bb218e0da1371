"""Small modules written the TF1 way, as the published TF1 Hub format modules were: graph mode, reference
variables (``VariableV2``/``Assign``), a ``tf.compat.v1.train.Saver``, v1 control flow (``Enter``/``Exit``/
``Switch``/``Merge``/``NextIteration`` and ``TensorArrayV3``), a vocabulary asset in the legacy assets
collection and a table initialiser as the main op.

TF2 cannot write the TF1 Hub format (``tfhub_module.pb``), but what ``hub.load`` runs of such a module is its
``saved_model.pb``, which ``tf.compat.v1.saved_model.Builder`` writes the same way. These modules are what
the trust check's allow-list (:mod:`embedx_tfhub.allowed_ops`) is derived from for ``gnews-swivel-20dim/1``,
``nnlm-en-dim*`` and ``elmo/3``, which cannot be downloaded here:

- :func:`build_tf1_text_module`: the graph of TF Hub's ``text_embeddings`` exporter (``sentences`` ->
  ``default``: ``\\pP`` removed, ``string_split``, a vocabulary table from a text file with OOV buckets,
  ``embedding_lookup_sparse(combiner="sqrtn")``), signature ``default``;
- :func:`build_tf1_elmo_module`: ``default`` (sentences) and ``tokens`` signatures over a hashed word
  table and a forward/backward LSTM run by ``tf.compat.v1.while_loop`` with TensorArrays, cell clipped as
  in bilm-tf (``ClipByValue``); outputs ``word_emb`` and ``lstm_outputs1``, small sizes.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from embedx_tfhub._tf import tensorflow
from embedx_tfhub.testing.text_module import WORDS

tf = tensorflow()
v1 = tf.compat.v1


@contextlib.contextmanager
def _v1_control_flow() -> Iterator[None]:
    """v1 control flow while building a graph (the published modules' ``while_loop``), restored afterwards."""
    from tensorflow.python.ops import control_flow_util

    before = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
    try:
        yield
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = before


def _save(graph, out_dir: str | Path, signatures: dict, assets: Sequence = ()) -> str:
    """Initialise the graph's variables and write it with the v1 builder (tables initialised by the main op)."""
    with graph.as_default(), v1.Session(graph=graph) as session:
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(out_dir))
        for asset in assets:
            v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, asset)
        builder.add_meta_graph_and_variables(
            session, [v1.saved_model.tag_constants.SERVING], signature_def_map=signatures,
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS), main_op=v1.tables_initializer(),
            saver=v1.train.Saver(sharded=True, write_version=v1.train.SaverDef.V2), strip_default_attrs=True)
        builder.save()
    return str(out_dir)


def _signature(inputs: dict, outputs: dict):
    return v1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)


def build_tf1_text_module(out_dir: str | Path, words: Sequence[str] = WORDS, dim: int = 20,
                          num_oov_buckets: int = 100, seed: int = 0) -> str:
    """TF Hub's TF1 text-embedding exporter graph (``module_fn_with_preprocessing``) saved to ``out_dir``."""
    rng = np.random.default_rng(seed)
    matrix = np.concatenate([rng.normal(0, 1, (len(words), dim)), np.zeros((num_oov_buckets, dim))]).astype(np.float32)
    graph = tf.Graph()
    with tempfile.TemporaryDirectory() as tmp, graph.as_default():
        vocab_file = Path(tmp) / "tokens.txt"
        vocab_file.write_text("".join(w + "\n" for w in words), encoding="utf-8")
        sentences = v1.placeholder(tf.string, [None], name="sentences")
        normalized = v1.regex_replace(sentences, r"\pP", "")
        tokens = v1.string_split(normalized, " ")
        embeddings = v1.get_variable("embeddings", initializer=tf.constant(matrix), use_resource=False)
        initializer = v1.lookup.TextFileInitializer(str(vocab_file), tf.string, v1.lookup.TextFileIndex.WHOLE_LINE,
                                                    tf.int64, v1.lookup.TextFileIndex.LINE_NUMBER)
        table = v1.lookup.StaticVocabularyTable(initializer, num_oov_buckets)  # index_table_from_file's graph
        ids = tf.SparseTensor(tokens.indices, table.lookup(tokens.values), tokens.dense_shape)
        ids, _ = v1.sparse_fill_empty_rows(ids, table.lookup(tf.constant("")))
        ids = v1.sparse_reset_shape(ids)
        embedded = v1.nn.embedding_lookup_sparse(embeddings, ids, None, combiner="sqrtn")
        asset = v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS)
        return _save(graph, out_dir, {"default": _signature({"default": sentences}, {"default": embedded})}, asset)


def build_tf1_elmo_module(out_dir: str | Path, buckets: int = 64, embed: int = 16, units: int = 8,
                          clip: float = 3.0, seed: int = 0) -> str:
    """An ELMo-shaped TF1 graph (hashed words, one biLSTM layer in v1 ``while_loop``s) saved to ``out_dir``."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with _v1_control_flow(), graph.as_default():
        def var(name, *shape):
            return v1.get_variable(name, initializer=tf.constant(rng.normal(0, 0.5, shape).astype(np.float32)),
                                   use_resource=False)

        table = var("char_cnn/embedding", buckets, embed)
        kernel, bias = var("lstm/kernel", embed + units, 4 * units), var("lstm/bias", 4 * units)
        weights = v1.get_variable("aggregation/weights", initializer=tf.zeros([2]), use_resource=False)

        def lstm(x, lengths):
            """One LSTM over ``x [B, T, E]``, ``tf.nn.dynamic_rnn``'s loop: v1 while, TensorArrays, clipping."""
            steps = tf.shape(x)[1]
            inputs = v1.TensorArray(tf.float32, size=steps).unstack(tf.transpose(x, [1, 0, 2]))
            outputs = v1.TensorArray(tf.float32, size=steps)
            zeros = tf.zeros(tf.stack([tf.shape(x)[0], units]))

            def body(t, h, c, out):
                gates = tf.nn.bias_add(tf.matmul(tf.concat([inputs.read(t), h], 1), kernel), bias)
                i, f, g, o = tf.split(gates, 4, axis=1)
                c = tf.clip_by_value(tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g), -clip, clip)
                h = tf.sigmoid(o) * tf.tanh(c)
                return t + 1, h, c, out.write(t, h)

            *_, outputs = v1.while_loop(lambda t, *_: t < steps, body, [tf.constant(0), zeros, zeros, outputs])
            mask = tf.sequence_mask(lengths, steps, dtype=tf.float32)[:, :, tf.newaxis]
            return tf.transpose(outputs.stack(), [1, 0, 2]) * mask

        def compute(tokens, lengths):
            word_emb = tf.gather(table, tf.strings.to_hash_bucket_fast(tokens, buckets))
            backward = tf.reverse_sequence(lstm(tf.reverse_sequence(word_emb, lengths, 1, 0), lengths), lengths, 1, 0)
            lstm1 = tf.concat([lstm(word_emb, lengths), backward], -1)
            mixed = tf.nn.softmax(weights)
            return {"word_emb": word_emb, "lstm_outputs1": lstm1,
                    "elmo": mixed[0] * tf.concat([word_emb[..., :units], word_emb[..., :units]], -1) + mixed[1] * lstm1}

        sentences = v1.placeholder(tf.string, [None], name="default")
        split = v1.string_split(sentences, " ")
        words = v1.sparse_tensor_to_dense(split, default_value="")
        from_text = compute(words, tf.cast(tf.math.bincount(tf.cast(split.indices[:, 0], tf.int32),
                                                            minlength=tf.shape(sentences)[0]), tf.int32))
        tokens = v1.placeholder(tf.string, [None, None], name="tokens")
        sequence_len = v1.placeholder(tf.int32, [None], name="sequence_len")
        from_tokens = compute(tokens, sequence_len)
        return _save(graph, out_dir, {
            "default": _signature({"default": sentences}, from_text),
            "tokens": _signature({"tokens": tokens, "sequence_len": sequence_len}, from_tokens)})
