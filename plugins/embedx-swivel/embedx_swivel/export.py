"""Word vectors -> a TF2 SavedModel that works as a TF Hub text-embedding module (gnews-swivel style).

The module takes a 1-D ``tf.string`` batch of untokenized sentences and returns ``[batch, dim]``
float32, like ``gnews-swivel-20dim`` and ``nnlm-en-dim50``:

1. normalise exactly as :mod:`.tokenizer` does at training time (optional lowercasing, punctuation
   deleted, whitespace split, empty tokens dropped); the character sets are compiled into the graph;
2. look every token up in a ``StaticVocabularyTable`` initialised from the asset ``assets/tokens.txt``
   (one word per line, line number = row), words outside it hash into ``num_oov_buckets`` extra rows,
   which start as zeros (so they add nothing until fine-tuned, but they do count in sqrt-n);
3. combine with ``tf.nn.safe_embedding_lookup_sparse(..., combiner="sqrtn")``: ``sum / sqrt(tokens)``.
   An empty sentence (or one made only of punctuation) becomes the single token ``""``, which lands in
   an OOV bucket, as in the published modules: its vector is that bucket's row, zeros at export.

For fine-tuning through ``hub.KerasLayer(handle, trainable=True)`` the exported object carries
``variables``, ``trainable_variables`` (the one embedding matrix, OOV rows included) and
``regularization_losses`` (empty) as saved attributes, so they survive loading; a plain ``tf.Module``
would lose them and train nothing. The object is a ``tf.train.Checkpoint`` (an AutoTrackable), the
way TF Hub's own text-embedding exporter builds it. A ``default`` signature returning
``{"default": [batch, dim]}`` for input ``default`` serves TF1-style callers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedx_swivel import tokenizer
from embedx_swivel.errors import SwivelError, SwivelOptionError
from embedx_tfhub.folders import replace_folder, staging_folder

VOCAB_ASSET = "tokens.txt"
METADATA_ASSET = "embedx_swivel.json"
FORMAT_VERSION = 1


@dataclass
class VocabularyReport:
    """What normalising a vector file's words for the module did."""

    kept: int
    dropped_empty: int  # only punctuation: the tokenizer never produces them
    dropped_multiword: int  # split into several tokens: unreachable as one token
    merged: int  # normalised onto an earlier (more frequent) word, which wins


def prepare_vocabulary(words: list[str], vectors: np.ndarray, lowercase: bool) -> tuple[list[str], np.ndarray,
                                                                                          VocabularyReport]:
    """Rewrite words as the module's tokenizer would produce them; drop those it never can.

    Vector files are most frequent first, so when two words normalise alike (``"U.S."`` and ``"US"``)
    the first keeps its vector. Words already in tokenizer form (a Swivel vocabulary) pass unchanged.
    """
    seen: dict[str, int] = {}
    rows: list[int] = []
    empty = multi = merged = 0
    for i, word in enumerate(words):
        tokens = tokenizer.tokenize(word, lowercase)
        if not tokens:
            empty += 1
        elif len(tokens) > 1:
            multi += 1
        elif tokens[0] in seen:
            merged += 1
        else:
            seen[tokens[0]] = i
            rows.append(i)
    kept_words = list(seen)
    return kept_words, np.asarray(vectors)[rows], VocabularyReport(len(kept_words), empty, multi, merged)


def _module_class(tf):
    class TextEmbeddingModule(tf.train.Checkpoint):
        """String batch in, [batch, dim] out; see the module docstring of embedx_swivel.export."""

        def __init__(self, vocab_path: str, metadata_path: str, embeddings: np.ndarray, num_oov_buckets: int,
                     lowercase: bool):
            super().__init__()
            self._vocabulary_file = tf.saved_model.Asset(vocab_path)
            self._metadata_file = tf.saved_model.Asset(metadata_path)
            initializer = tf.lookup.TextFileInitializer(
                self._vocabulary_file, key_dtype=tf.string, key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER)
            # anonymous: a shared table's name embeds the Asset object's memory address, which made two exports
            # of the same vectors differ in saved_model.pb (and so in the module's digest and every cache key)
            self._table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=num_oov_buckets,
                                                          experimental_is_anonymous=True)
            self.embeddings = tf.Variable(embeddings, name="embeddings")
            self.variables = [self.embeddings]
            self.trainable_variables = [self.embeddings]
            self.regularization_losses = []
            self._lowercase = lowercase
            self._punctuation = tokenizer.punctuation_pattern()
            self._whitespace = tokenizer.whitespace_pattern()

        def _tokens(self, sentences):
            text = tf.strings.lower(sentences, encoding="utf-8") if self._lowercase else sentences
            text = tf.strings.regex_replace(text, self._punctuation, "")
            text = tf.strings.regex_replace(text, self._whitespace, " ")
            pieces = tf.strings.split(text, sep=" ")
            sparse = tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0).to_sparse()
            sparse, _ = tf.sparse.fill_empty_rows(sparse, "")  # an empty sentence is the token "" (an OOV bucket)
            width = tf.maximum(sparse.dense_shape[1], 1)  # all sentences empty: width 0 -> 1
            return tf.SparseTensor(sparse.indices, sparse.values, tf.stack([sparse.dense_shape[0], width]))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, sentences):
            tokens = self._tokens(sentences)
            ids = tf.SparseTensor(tokens.indices, self._table.lookup(tokens.values), tokens.dense_shape)
            return tf.nn.safe_embedding_lookup_sparse(self.embeddings, ids, None, combiner="sqrtn")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def default_signature(self, default):  # TF1 Hub convention: the single input and output are "default"
            return {"default": self.__call__(default)}

    return TextEmbeddingModule


def export_module(words: list[str], vectors: np.ndarray, out_dir: str | os.PathLike[str], num_oov_buckets: int = 1,
                  lowercase: bool = False, metadata: dict | None = None, overwrite: bool = False) -> dict:
    """Write a SavedModel text-embedding module for ``words`` (already in tokenizer form, unique).

    The module is built in a sibling temporary folder and renamed into place, so ``out_dir`` is either
    the old content or the complete new module, never half of one. Returns the metadata written.
    """
    if num_oov_buckets < 1:
        raise SwivelOptionError("num_oov_buckets must be at least 1 (an empty sentence needs one), not "
                                f"{num_oov_buckets}")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or not words:
        raise SwivelError(f"{len(words)} words but a vector matrix of shape {vectors.shape}")
    if len(set(words)) != len(words):
        raise SwivelError("the vocabulary has duplicate words; run prepare_vocabulary first")
    bad = [w for w in words if tokenizer.tokenize(w, lowercase) != [w]]
    if bad:
        raise SwivelError(f"{len(bad)} word(s) are not in tokenizer form (e.g. {bad[0]!r}); run "
                          "prepare_vocabulary first")
    if not np.isfinite(vectors).all():
        raise SwivelError("the vectors contain NaN or infinity")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise SwivelOptionError(f"{out} exists and is not empty; choose another folder or pass --overwrite")
    from embedx_tfhub import _tf

    tf = _tf.tensorflow()

    meta = {"format": "embedx-swivel-module", "format_version": FORMAT_VERSION, "dim": int(vectors.shape[1]),
            "vocabulary": len(words), "num_oov_buckets": int(num_oov_buckets), "combiner": "sqrtn",
            "tokenizer": tokenizer.describe(lowercase), **(metadata or {})}
    with staging_folder(out) as staging:
        source = staging / "source"
        source.mkdir()
        (source / VOCAB_ASSET).write_text("".join(w + "\n" for w in words), encoding="utf-8")
        (source / METADATA_ASSET).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        table = np.concatenate([vectors, np.zeros((num_oov_buckets, vectors.shape[1]), np.float32)])
        module = _module_class(tf)(str(source / VOCAB_ASSET), str(source / METADATA_ASSET), table,
                                   num_oov_buckets, lowercase)
        saved = staging / "module"
        tf.saved_model.save(module, str(saved), signatures={"default": module.default_signature})
        replace_folder(saved, out)
    return meta


def read_metadata(module_dir: str | os.PathLike[str]) -> dict | None:
    """The embedx metadata of an exported module, ``None`` for a module from elsewhere."""
    path = Path(module_dir) / "assets" / METADATA_ASSET
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
