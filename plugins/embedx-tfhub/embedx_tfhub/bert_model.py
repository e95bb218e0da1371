"""A BERT encoder in plain TensorFlow with the TF Hub BERT encoder interface, ready to save.

The computation replicates Hugging Face ``BertModel`` (post-LayerNorm BERT): word + position +
token-type embeddings, LayerNorm, then per layer multi-head self-attention with an additive
padding mask, residual + LayerNorm, a feed-forward block with exact (erf) GELU, residual +
LayerNorm; the pooler is a dense layer with tanh on the first position. LayerNorm epsilon
comes from the config (1e-12 for BERT).

The saved object follows the TF Hub BERT encoder convention (``bert_en_uncased_L-12_H-768_A-12/3``
and later): ``encoder(dict(input_word_ids=, input_mask=, input_type_ids=))`` with int32
``[batch, seq]`` inputs returns ``pooled_output [B, H]``, ``sequence_output [B, T, H]``,
``encoder_outputs`` (a list, one ``[B, T, H]`` tensor per transformer block, the last equal to
``sequence_output``) and ``default`` (= ``pooled_output``). It carries ``vocab_file`` (an asset)
and ``do_lower_case`` (a boolean variable) for building the WordPiece tokenizer, and exposes
``variables``, ``trainable_variables`` and ``regularization_losses`` so ``hub.KerasLayer(...,
trainable=True)`` can fine-tune it. Variables are named ``transformer/layer_<i>/...`` like TF Hub's
encoders, which is what :func:`embedx_tfhub.keras_models.bert_classifier` uses to pick the top
``n`` layers to train. There is no dropout: the module computes the inference function.

Weights are a flat ``{name: numpy array}`` in the names of :func:`weight_shapes`; see
:mod:`embedx_tfhub.convert` for the mapping from a Hugging Face checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from embedx_tfhub._tf import tensorflow

tf = tensorflow()
AutoTrackable = tf.__internal__.tracking.AutoTrackable

#: Added to attention scores of padded key positions: exp() of it is exactly 0 in float32.
MASK_PENALTY = -10000.0


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_dict(cls, config: dict) -> BertConfig:
        act = config.get("hidden_act", "gelu")
        if act != "gelu":
            raise ValueError(f"hidden_act={act!r}: only BERT's exact erf GELU ('gelu') is implemented")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are implemented")
        return cls(**{k: config[k] for k in cls.__dataclass_fields__ if k in config})


def weight_shapes(c: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every weight of the encoder by name, with its shape (kernels are ``[in, out]``)."""
    h, i = c.hidden_size, c.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "word_embeddings/embeddings": (c.vocab_size, h),
        "position_embedding/embeddings": (c.max_position_embeddings, h),
        "type_embeddings/embeddings": (c.type_vocab_size, h),
        "embeddings/layer_norm/gamma": (h,),
        "embeddings/layer_norm/beta": (h,),
    }
    for n in range(c.num_hidden_layers):
        p = f"transformer/layer_{n}"
        for part in ("query", "key", "value", "attention_output"):
            shapes[f"{p}/self_attention/{part}/kernel"] = (h, h)
            shapes[f"{p}/self_attention/{part}/bias"] = (h,)
        shapes[f"{p}/self_attention_layer_norm/gamma"] = (h,)
        shapes[f"{p}/self_attention_layer_norm/beta"] = (h,)
        shapes[f"{p}/intermediate/kernel"] = (h, i)
        shapes[f"{p}/intermediate/bias"] = (i,)
        shapes[f"{p}/output/kernel"] = (i, h)
        shapes[f"{p}/output/bias"] = (h,)
        shapes[f"{p}/output_layer_norm/gamma"] = (h,)
        shapes[f"{p}/output_layer_norm/beta"] = (h,)
    shapes["pooler_transform/kernel"] = (h, h)
    shapes["pooler_transform/bias"] = (h,)
    return shapes


def random_weights(c: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """BERT-style initialisation (normal 0.02, LayerNorm 1/0): for test modules."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in weight_shapes(c).items():
        if name.endswith("/gamma"):
            out[name] = np.ones(shape, np.float32)
        elif name.endswith(("/beta", "/bias")):
            out[name] = np.zeros(shape, np.float32)
        else:
            out[name] = rng.normal(0.0, 0.02, shape).astype(np.float32)
    return out


class BertEncoder(AutoTrackable):
    """The encoder as a trackable object: save it with :func:`save_encoder`.

    An ``AutoTrackable`` rather than a ``tf.Module``: a ``tf.Module`` computes ``variables`` as a
    property that is not saved, and a reloaded one offers no trainable variables to Keras.
    """

    def __init__(self, config: BertConfig, weights: dict[str, np.ndarray], vocab_file: str, do_lower_case: bool):
        super().__init__()
        self.config = config
        shapes = weight_shapes(config)
        missing = sorted(set(shapes) - set(weights))
        if missing:
            raise ValueError(f"weights lack {len(missing)} tensors, e.g. {missing[0]}")
        self._weights = {}
        for name, shape in shapes.items():
            value = np.asarray(weights[name], dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"weight {name} has shape {value.shape}, expected {shape}")
            self._weights[name] = tf.Variable(value, name=name, trainable=True)
        # The TF Hub BERT encoder attributes a tokenizer is built from.
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False, name="do_lower_case")
        # What hub.KerasLayer reads to fine-tune (see the module docstring).
        self.trainable_variables = list(self._weights.values())
        self.variables = [*self.trainable_variables, self.do_lower_case]
        self.regularization_losses = []

    def _w(self, name: str):
        return self._weights[name]

    @tf.function(input_signature=[{
        "input_word_ids": tf.TensorSpec([None, None], tf.int32, name="input_word_ids"),
        "input_mask": tf.TensorSpec([None, None], tf.int32, name="input_mask"),
        "input_type_ids": tf.TensorSpec([None, None], tf.int32, name="input_type_ids"),
    }])
    def __call__(self, inputs):
        return self.encode(inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])

    def encode(self, ids, mask, type_ids):
        c = self.config
        length = tf.shape(ids)[1]
        x = (tf.gather(self._w("word_embeddings/embeddings"), ids)
             + self._w("position_embedding/embeddings")[tf.newaxis, :length]
             + tf.gather(self._w("type_embeddings/embeddings"), type_ids))
        x = self._layer_norm(x, "embeddings/layer_norm")
        bias = (1.0 - tf.cast(mask, tf.float32))[:, tf.newaxis, tf.newaxis, :] * MASK_PENALTY
        outputs = []
        for n in range(c.num_hidden_layers):
            x = self._block(x, bias, f"transformer/layer_{n}")
            outputs.append(x)
        first = x[:, 0]
        pooled = tf.tanh(tf.matmul(first, self._w("pooler_transform/kernel")) + self._w("pooler_transform/bias"))
        return {"pooled_output": pooled, "sequence_output": x, "encoder_outputs": outputs, "default": pooled}

    def _dense(self, x, prefix: str):
        """``x [B, T, in] @ kernel + bias`` as one 2-D matmul."""
        kernel = self._w(f"{prefix}/kernel")
        shape = tf.shape(x)
        flat = tf.reshape(x, [-1, kernel.shape[0]])
        out = tf.matmul(flat, kernel) + self._w(f"{prefix}/bias")
        return tf.reshape(out, tf.concat([shape[:-1], [kernel.shape[1]]], axis=0))

    def _layer_norm(self, x, prefix: str):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        normed = (x - mean) * tf.math.rsqrt(variance + self.config.layer_norm_eps)
        return normed * self._w(f"{prefix}/gamma") + self._w(f"{prefix}/beta")

    def _heads(self, x, batch, length):
        c = self.config
        size = c.hidden_size // c.num_attention_heads
        return tf.transpose(tf.reshape(x, [batch, length, c.num_attention_heads, size]), [0, 2, 1, 3])

    def _block(self, x, bias, p: str):
        c = self.config
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        q = self._heads(self._dense(x, f"{p}/self_attention/query"), batch, length)
        k = self._heads(self._dense(x, f"{p}/self_attention/key"), batch, length)
        v = self._heads(self._dense(x, f"{p}/self_attention/value"), batch, length)
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(c.hidden_size // c.num_attention_heads) + bias
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, length, c.hidden_size])
        x = self._layer_norm(x + self._dense(context, f"{p}/self_attention/attention_output"),
                             f"{p}/self_attention_layer_norm")
        hidden = self._dense(x, f"{p}/intermediate")
        hidden = 0.5 * hidden * (1.0 + tf.math.erf(hidden / math.sqrt(2.0)))  # exact GELU, as BERT
        return self._layer_norm(x + self._dense(hidden, f"{p}/output"), f"{p}/output_layer_norm")


def save_encoder(config: BertConfig, weights: dict[str, np.ndarray], vocab_file: str, do_lower_case: bool,
                 out_dir: str) -> str:
    """Build the encoder from ``weights`` and save it as a TF2 SavedModel (TF Hub encoder interface)."""
    module = BertEncoder(config, weights, vocab_file, do_lower_case)
    tf.saved_model.save(module, out_dir)
    return out_dir
