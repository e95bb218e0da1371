"""A trained biLM (:mod:`.elmo_train`) -> a module with the interface of TF Hub's ``google/elmo/3``.

The module is a TF2 SavedModel saved with ``signatures={"default": ..., "tokens": ...}``, the
same interface as :mod:`embedx_tfhub.testing.elmo_module`, so ``hub.load(...).signatures[...]``,
``hub.KerasLayer(..., signature="default", signature_outputs_as_dict=True)`` and the ``elmo``
embedder use it as they use the published module:

- ``default``: input ``default`` string ``[batch]`` (split on spaces inside the module, runs of
  spaces make no empty token);
- ``tokens``: inputs ``tokens`` string ``[batch, max_len]`` and ``sequence_len`` int32 ``[batch]``;
- outputs: ``word_emb [B, T, 512]`` (the character encoder), ``lstm_outputs1`` and
  ``lstm_outputs2 [B, T, 1024]`` (forward and backward concatenated), ``elmo [B, T, 1024]``
  (``scaling * sum_k softmax(weights)_k * layer_k`` with layer 0 = ``[word_emb, word_emb]``) and
  ``default [B, 1024]`` (the mean of ``elmo`` over the real tokens). Padded positions are zero.

The computation is :meth:`BiLM.features`, the code the model trained with, on a copy of the
trained encoder's weights (the softmax, which the module never uses, is left out). The mixing
scalars ``aggregation/weights`` (3, zeros: equal weights) and ``aggregation/scaling`` (1.0) are
the only ``trainable_variables``, as in the published module. ``assets/embedx_elmo.json`` records
where the weights came from and the held-out perplexity.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from embedx_elmo_train.train import ElmoTrainingError, load_trained
from embedx_tfhub.folders import replace_folder, staging_folder

WORD_DIM = 512  # the published interface: word_emb 512, each LSTM layer 2 x 512
METADATA_ASSET = "embedx_elmo.json"
FORMAT_VERSION = 1


def module_class(tf: Any) -> type:
    from embedx_elmo_train.model import BiLM

    class ElmoModule(tf.__internal__.tracking.AutoTrackable):
        """ELMo's two signatures over a trained biLM encoder; see :mod:`embedx_elmo_train.export`."""

        def __init__(self, bilm: BiLM, metadata_path: str):
            super().__init__()
            self.bilm = bilm
            self._metadata_file = tf.saved_model.Asset(metadata_path)
            self.mix_weights = tf.Variable(tf.zeros([3]), name="aggregation/weights", trainable=True)
            self.mix_scaling = tf.Variable(1.0, name="aggregation/scaling", trainable=True)
            self.trainable_variables = [self.mix_weights, self.mix_scaling]
            self.variables = [*bilm.encoder_variables(), *self.trainable_variables]
            self.regularization_losses = []

        def compute(self, tokens: Any, sequence_len: Any) -> dict[str, Any]:
            lengths = tf.cast(sequence_len, tf.int32)
            out = self.bilm.features(tokens, lengths)
            weights = tf.nn.softmax(self.mix_weights)
            word = out["word_emb"]
            elmo = self.mix_scaling * (weights[0] * tf.concat([word, word], -1) + weights[1] * out["lstm_outputs1"]
                                       + weights[2] * out["lstm_outputs2"])
            count = tf.cast(tf.maximum(lengths, 1), tf.float32)[:, tf.newaxis]
            return {**out, "elmo": elmo, "default": tf.reduce_sum(elmo, axis=1) / count}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="default")])
        def default_signature(self, default: Any) -> dict[str, Any]:
            words = tf.strings.split(default, sep=" ")
            words = tf.ragged.boolean_mask(words, tf.strings.length(words) > 0)
            return self.compute(words.to_tensor(default_value=""), tf.cast(words.row_lengths(), tf.int32))

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens"),
                                      tf.TensorSpec([None], tf.int32, name="sequence_len")])
        def tokens_signature(self, tokens: Any, sequence_len: Any) -> dict[str, Any]:
            return self.compute(tokens, sequence_len)

    return ElmoModule


def encoder_copy(model: Any) -> Any:
    """A biLM with ``model``'s encoder weights and a 4-word softmax (the module computes no word probabilities)."""
    from dataclasses import replace

    from embedx_elmo_train.model import BiLM

    copy = BiLM(replace(model.config, vocab_size=4))
    for target, source in zip(copy.encoder_variables(), model.encoder_variables(), strict=True):
        if target.name != source.name or target.shape != source.shape:
            raise ElmoTrainingError(f"encoder variable {source.name} does not match {target.name}")
        target.assign(source)
    return copy


def export_elmo(train_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], overwrite: bool = False) -> dict:
    """Write the newest checkpoint of ``train_dir`` as an ELMo module in ``out_dir``; return its metadata.

    Built in a temporary sibling folder and renamed into place: ``out_dir`` is the old module or the
    complete new one, never half of one.
    """
    from embedx_tfhub._tf import tensorflow

    tf = tensorflow()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ElmoTrainingError(f"{out} exists and is not empty; choose another folder or pass --overwrite")
    model, vocab, settings = load_trained(train_dir)
    if model.config.projection_dim != WORD_DIM:
        raise ElmoTrainingError(
            f"the biLM in {train_dir} projects to {model.config.projection_dim}, but an ELMo module "
            f"returns word_emb of {WORD_DIM} and LSTM layers of {2 * WORD_DIM}; train with the "
            "default projection"
        )
    state_path = Path(train_dir) / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    meta = {"format": "embedx-elmo-module", "format_version": FORMAT_VERSION, "source": str(Path(train_dir).resolve()),
            "checkpoint": state.get("checkpoint"), "step": int(state.get("checkpoint", "ckpt-0").rsplit("-", 1)[-1]),
            "tokens_trained": state.get("tokens_seen"), "model": model.config.to_json(),
            "parameters_encoder": model.parameter_counts()["encoder"], "corpus": settings.get("corpus"),
            "perplexity_before": state.get("perplexity_before"), "perplexity_after": state.get("perplexity_after"),
            "tokens": "whitespace split; UTF-8 bytes per token, cut to max_chars - 2"}
    with staging_folder(out) as staging:
        (staging / METADATA_ASSET).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        module = module_class(tf)(encoder_copy(model), str(staging / METADATA_ASSET))
        saved = staging / "module"
        signatures = {"default": module.default_signature.get_concrete_function(),
                      "tokens": module.tokens_signature.get_concrete_function()}
        tf.saved_model.save(module, str(saved), signatures=signatures)
        replace_folder(saved, out)
    return meta


def read_metadata(module_dir: str | os.PathLike[str]) -> dict | None:
    """The embedx metadata of an exported biLM module, ``None`` for a module from elsewhere."""
    path = Path(module_dir) / "assets" / METADATA_ASSET
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
