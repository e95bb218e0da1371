"""A small text-embedding module with the interface of TF Hub's gnews-swivel-20dim / nnlm-en-dim*.

A TF2 SavedModel (like ``tf2-preview/gnews-swivel-20dim/1`` and ``nnlm-en-dim50/2``): calling it
on a string ``[batch]`` returns float32 ``[batch, dim]``; the same function is also its
``default`` signature (input ``default``, output ``default``), which is how TF1 Hub format text
modules are called. It computes what TF Hub's text-embedding exporter computes: punctuation
(``\\pP``) removed, split on single spaces (no lowercasing), each token looked up in a
vocabulary with ``num_oov_buckets`` hash buckets after it, an empty text mapped to the token
``""`` (an OOV bucket), and ``safe_embedding_lookup_sparse(..., combiner="sqrtn")``. The
embedding matrix is trainable and listed in ``trainable_variables``, so
``hub.KerasLayer(handle, trainable=True, input_shape=[], dtype=tf.string)`` fine-tunes it.

Vectors come from ``vectors`` (``{word: vector}``) or, by default, a random table over a small
English vocabulary; OOV bucket rows are zero unless ``oov_vectors`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from embedx_tfhub._tf import tensorflow

tf = tensorflow()
AutoTrackable = tf.__internal__.tracking.AutoTrackable

WORDS = ("the a an and or but of to in on at for with is was are be it this that film movie story good bad "
         "great dull funny boring long short best worst love hate fun too very not no yes i you he she we they "
         "acting plot characters scenes time way make made").split()


class TextEmbedding(AutoTrackable):
    def __init__(self, words: Sequence[str], matrix: np.ndarray, num_oov_buckets: int):
        super().__init__()
        self.num_oov_buckets = num_oov_buckets
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(words), tf.string), tf.range(len(words), dtype=tf.int64))
        self.table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets)
        self.embeddings = tf.Variable(matrix.astype(np.float32), name="embeddings", trainable=True)
        self.variables = [self.embeddings]
        self.trainable_variables = [self.embeddings]
        self.regularization_losses = []

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="default")])
    def __call__(self, default):
        return self.embed(default)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="default")])
    def default_signature(self, default):
        return {"default": self.embed(default)}

    def embed(self, sentences):
        normalized = tf.strings.regex_replace(sentences, r"\pP", "")
        tokens = tf.strings.split(normalized, sep=" ").to_sparse()
        tokens, _ = tf.sparse.fill_empty_rows(tokens, tf.constant(""))  # an empty text: one OOV token
        ids = tf.SparseTensor(tokens.indices, self.table.lookup(tokens.values), tokens.dense_shape)
        return tf.nn.safe_embedding_lookup_sparse(self.embeddings, ids, None, combiner="sqrtn")


def build_text_module(out_dir: str | Path, vectors: Mapping[str, Sequence[float]] | None = None, dim: int = 20,
                      num_oov_buckets: int = 100, oov_vectors: np.ndarray | None = None, seed: int = 0) -> str:
    """Save a text-embedding module to ``out_dir``; return the folder."""
    if vectors is None:
        rng = np.random.default_rng(seed)
        vectors = {w: rng.normal(0, 1, dim) for w in WORDS}
    words = list(vectors)
    matrix = np.asarray([vectors[w] for w in words], dtype=np.float32)
    oov = np.zeros((num_oov_buckets, matrix.shape[1]), np.float32) if oov_vectors is None else oov_vectors
    module = TextEmbedding(words, np.concatenate([matrix, np.asarray(oov, np.float32)]), num_oov_buckets)
    tf.saved_model.save(module, str(out_dir),
                        signatures={"default": module.default_signature.get_concrete_function()})
    return str(out_dir)
