"""Keras (tf_keras, Keras 2) models that fine-tune TF Hub modules, as the seeds' notebooks built them.

Each builder takes a handle (URL or folder, resolved like the embedders: TF Hub cache first,
a clear ``EmbedderUnavailable`` offline) and a small dense head, and returns a compiled
``tf_keras.Model``:

- :func:`text_classifier`: ``hub.KerasLayer(handle, trainable=True, input_shape=[],
  dtype=tf.string)`` + ``Dense`` layers (Swivel + ``Dense(16)`` + output, as the seeds do);
  ``trainable=False`` freezes the embedding table.
- :func:`elmo_classifier`: ELMo through its ``default`` signature, frozen, with ELMo's scalar
  mix (3 layer weights + 1 scale = 4 scalars) as the only trainable part of the encoder. A TF
  Hub signature cannot be trained through ``hub.KerasLayer`` (TF1 Hub format modules, like the
  real ``google/elmo/3``, cannot be at all), so the mix is recomputed here from ``word_emb``,
  ``lstm_outputs1`` and ``lstm_outputs2``, starting from the module's own
  ``aggregation/weights`` and ``aggregation/scaling`` when it has them (then it equals the
  module's ``elmo`` output before training). :func:`elmo_mix_scalars` reads the 4 values.
- :func:`bert_classifier`: a TF Hub BERT encoder with only its top ``n_fine_tune_layers``
  transformer blocks (and the pooler) trainable, as the seeds' ``BertLayer(n_fine_tune_layers)``;
  inputs are the three int32 ``[batch, max_length]`` arrays from :func:`bert_inputs`.

Importing this module imports TensorFlow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from embedx_tfhub import _tf, handles

tf = _tf.tensorflow()
hub = _tf.hub()
keras = _tf.keras()

BERT_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
_LAYER = re.compile(r"(?:^|/)layer_(\d+)/")


def _head(x: Any, hidden: Sequence[int], n_classes: int) -> Any:
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    if n_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", name="output")(x)
    return keras.layers.Dense(n_classes, activation="softmax", name="output")(x)


def _compile(model: Any, n_classes: int, learning_rate: float) -> Any:
    loss = "binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    return model


# -- text-embedding modules (Swivel, NNLM) -------------------------------------------
def text_classifier(handle: str, hidden: Sequence[int] = (16,), n_classes: int = 2, trainable: bool = True,
                    learning_rate: float = 1e-3) -> Any:
    """String input -> TF Hub text embedding (fine-tuned if ``trainable``) -> ``Dense`` head."""
    path = handles.resolve(handle)
    inputs = keras.Input(shape=(), dtype=tf.string, name="text")
    embedded = hub.KerasLayer(path, trainable=trainable, input_shape=[], dtype=tf.string, name="embedding")(inputs)
    model = keras.Model(inputs, _head(embedded, hidden, n_classes), name="tfhub_text_classifier")
    return _compile(model, n_classes, learning_rate)


# -- ELMo --------------------------------------------------------------------------------
class ElmoMix(keras.layers.Layer):
    """ELMo's document vector with a trainable scalar mix: ``scaling * sum_k softmax(weights)_k * layer_k``
    over [word_emb duplicated to 1024, lstm_outputs1, lstm_outputs2], mean-pooled over the tokens.

    The module runs frozen through its ``default`` signature (texts split on spaces inside it).
    """

    def __init__(self, path: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.path = path
        self.elmo = hub.KerasLayer(path, signature="default", signature_outputs_as_dict=True, trainable=False,
                                   name="elmo_module")
        weights, scaling = _module_mix(self.elmo)
        self.mix_weights = self.add_weight(name="mix_weights", shape=(3,), trainable=True,
                                           initializer=keras.initializers.Constant(weights))
        self.mix_scaling = self.add_weight(name="mix_scaling", shape=(), trainable=True,
                                           initializer=keras.initializers.Constant(scaling))

    def call(self, texts):
        out = self.elmo(texts)
        word = out["word_emb"]
        w = tf.nn.softmax(self.mix_weights)
        mixed = self.mix_scaling * (w[0] * tf.concat([word, word], -1) + w[1] * out["lstm_outputs1"]
                                    + w[2] * out["lstm_outputs2"])
        words = tf.strings.split(texts, sep=" ")
        lengths = tf.reduce_sum(tf.cast(tf.strings.length(words) > 0, tf.int32), axis=1)
        mask = tf.sequence_mask(lengths, tf.shape(mixed)[1], dtype=mixed.dtype)[:, :, tf.newaxis]
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return tf.reduce_sum(mixed * mask, axis=1) / count

    def get_config(self) -> dict:
        return super().get_config() | {"path": self.path}


def _module_mix(layer: Any) -> tuple[np.ndarray, float]:
    """The module's own mix scalars (``aggregation/weights`` [3], ``aggregation/scaling``), else ELMo's defaults."""
    weights, scaling = np.zeros(3, np.float32), 1.0
    for variable in layer.weights:
        name = variable.name
        if "aggregation/weights" in name and tuple(variable.shape) == (3,):
            weights = variable.numpy()
        elif "aggregation/scaling" in name and variable.shape.num_elements() == 1:
            scaling = float(np.reshape(variable.numpy(), ()))
    return weights, scaling


def elmo_classifier(handle: str = "https://tfhub.dev/google/elmo/3", hidden: Sequence[int] = (256,),
                    n_classes: int = 2, learning_rate: float = 1e-3) -> Any:
    """String input -> ELMo (frozen, trainable 4-scalar mix, mean over tokens) -> ``Dense`` head."""
    path = handles.resolve(handle)
    inputs = keras.Input(shape=(), dtype=tf.string, name="text")
    pooled = ElmoMix(path, name="elmo")(inputs)
    model = keras.Model(inputs, _head(pooled, hidden, n_classes), name="tfhub_elmo_classifier")
    return _compile(model, n_classes, learning_rate)


def elmo_mix_scalars(model: Any) -> dict[str, Any]:
    """The 4 trainable ELMo scalars of an :func:`elmo_classifier` model: layer weights (raw and softmaxed), scale."""
    layer = model.get_layer("elmo")
    raw = layer.mix_weights.numpy()
    return {"weights": raw, "softmax": tf.nn.softmax(raw).numpy(), "scaling": float(layer.mix_scaling.numpy())}


# -- BERT ----------------------------------------------------------------------------------
class TopLayersTrainable(hub.KerasLayer):
    """``hub.KerasLayer`` for a TF Hub BERT encoder where only the top ``n_fine_tune_layers`` blocks train.

    Variables are matched by name: ``.../layer_<i>/...`` is block ``i`` (as in TF Hub's encoders
    and :mod:`embedx_tfhub.bert_model`), ``pooler`` the pooler (trainable when ``n >= 1``);
    embeddings and lower blocks are frozen.
    """

    def __init__(self, handle: str, n_fine_tune_layers: int = 1, **kwargs: Any):
        self.n_fine_tune_layers = n_fine_tune_layers
        super().__init__(handle, trainable=True, **kwargs)

    def _setup_layer(self, trainable: bool = False, **kwargs: Any) -> None:
        super()._setup_layer(trainable, **kwargs)
        blocks = {int(m.group(1)) for v in self._trainable_weights if (m := _LAYER.search(v.name))}
        top = set(sorted(blocks)[-self.n_fine_tune_layers:]) if self.n_fine_tune_layers > 0 else set()

        def keep(variable: Any) -> bool:
            match = _LAYER.search(variable.name)
            if match:
                return int(match.group(1)) in top
            return "pooler" in variable.name and self.n_fine_tune_layers > 0

        frozen = [v for v in self._trainable_weights if not keep(v)]
        # In place: Keras wraps a list assigned to a layer attribute and keeps reading the old one.
        self._trainable_weights[:] = [v for v in self._trainable_weights if keep(v)]
        self._non_trainable_weights.extend(frozen)

    def get_config(self) -> dict:
        return super().get_config() | {"n_fine_tune_layers": self.n_fine_tune_layers}


class MaskedPool(keras.layers.Layer):
    """``first`` ([CLS]) or masked ``mean`` (``sum(x*m) / (sum(m) + 1e-10)``) of ``sequence_output``."""

    def __init__(self, pooling: str = "mean", **kwargs: Any):
        super().__init__(**kwargs)
        self.pooling = pooling

    def call(self, sequence, mask):
        if self.pooling == "first":
            return sequence[:, 0]
        m = tf.cast(mask, sequence.dtype)[:, :, tf.newaxis]
        return tf.reduce_sum(sequence * m, axis=1) / (tf.reduce_sum(m, axis=1) + 1e-10)

    def get_config(self) -> dict:
        return super().get_config() | {"pooling": self.pooling}


def bert_classifier(handle: str, max_length: int = 128, n_fine_tune_layers: int = 1,
                    pooling: Literal["pooled", "first", "mean"] = "pooled", hidden: Sequence[int] = (),
                    n_classes: int = 2, learning_rate: float = 2e-5) -> Any:
    """Token-id inputs -> TF Hub BERT (top ``n_fine_tune_layers`` trainable) -> pooling -> ``Dense`` head.

    ``pooled`` is the module's ``pooled_output`` (the seeds' ``first``); ``first`` the raw [CLS]
    vector; ``mean`` the masked mean of ``sequence_output``.
    """
    path = handles.resolve(handle)
    inputs = {name: keras.Input(shape=(max_length,), dtype=tf.int32, name=name) for name in BERT_INPUTS}
    outputs = TopLayersTrainable(path, n_fine_tune_layers, name="bert")(inputs)
    if pooling == "pooled":
        pooled = outputs["pooled_output"]
    else:
        pooled = MaskedPool(pooling, name="pool")(outputs["sequence_output"], inputs["input_mask"])
    model = keras.Model(inputs, _head(pooled, hidden, n_classes), name="tfhub_bert_classifier")
    return _compile(model, n_classes, learning_rate)


def bert_inputs(handle: str, texts: Sequence[str], max_length: int = 128) -> dict[str, np.ndarray]:
    """The three int32 ``[len(texts), max_length]`` arrays for :func:`bert_classifier`, tokenized with the
    module's own WordPiece vocabulary (as the ``tfhub-bert`` embedder does)."""
    from embedx_tfhub.bert import module_wordpiece

    module = handles.load(handle)
    tokenizer, (cls, sep, pad) = module_wordpiece(module)
    ids = np.full((len(texts), max_length), pad, np.int32)
    mask = np.zeros((len(texts), max_length), np.int32)
    for i, enc in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):
        row = [cls, *enc.ids[: max_length - 2], sep]
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}
