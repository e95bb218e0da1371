"""A tiny module with exactly the interface of TF Hub's ``google/elmo/3``, for tests and benchmarks.

The published module is in the TF1 Hub format, which TF2 cannot write. This one is a TF2
SavedModel saved with ``signatures={"default": ..., "tokens": ...}``; ``hub.load`` then exposes
``.signatures["default"]`` and ``.signatures["tokens"]`` exactly as it does for the real module,
with the same input names, output names, dtypes and shapes:

- ``default``: input ``default`` string ``[batch]``, split on spaces inside the module;
- ``tokens``: inputs ``tokens`` string ``[batch, max_len]`` and ``sequence_len`` int32 ``[batch]``;
- outputs of both: ``word_emb [B, T, 512]``, ``lstm_outputs1 [B, T, 1024]``, ``lstm_outputs2
  [B, T, 1024]``, ``elmo [B, T, 1024]`` and ``default [B, 1024]``, all float32.

Inside it is small: each token is hashed into a 64 x 16 embedding table (standing in for the
character CNN) and projected to 512; two bidirectional LSTM layers of 8 units per direction,
each direction projected to 512 (forward and backward concatenated: 1024, like ELMo's
layers). Positions past ``sequence_len`` are zero and never influence real positions (the
backward LSTM runs on the reversed real part only). ``elmo`` is ELMo's scalar mix,
``scaling * sum_k softmax(weights)_k * layer_k`` with layer 0 the word embedding duplicated to
1024 (as the real module and AllenNLP do); ``weights`` (3) and ``scaling`` (1) are the module's
4 trainable scalars (``aggregation/weights``, ``aggregation/scaling``), the only entries of its
``trainable_variables``, as in ``google/elmo/2`` and ``/3``. ``default`` is the mean of ``elmo``
over the real tokens (zeros for a text without tokens).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedx_tfhub._tf import tensorflow

tf = tensorflow()
AutoTrackable = tf.__internal__.tracking.AutoTrackable

BUCKETS, EMBED, UNITS = 64, 16, 8
WORD_DIM, LSTM_DIM = 512, 1024


class TinyElmo(AutoTrackable):
    def __init__(self, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)

        def var(name, *shape, scale=0.5):
            return tf.Variable(rng.normal(0, scale, shape).astype(np.float32), name=name, trainable=False)

        self.word_table = var("char_cnn/embedding", BUCKETS, EMBED)
        self.word_proj = var("char_cnn/projection", EMBED, WORD_DIM, scale=0.25)
        self.cells = {}
        for layer in (1, 2):
            for direction in ("forward", "backward"):
                name = f"lstm_{layer}/{direction}"
                self.cells[name] = {
                    "kernel": var(f"{name}/kernel", EMBED if layer == 1 else 2 * UNITS, 4 * UNITS),
                    "recurrent": var(f"{name}/recurrent_kernel", UNITS, 4 * UNITS),
                    "bias": var(f"{name}/bias", 4 * UNITS, scale=0.1),
                    "projection": var(f"{name}/projection", UNITS, LSTM_DIM // 2),
                }
        self.mix_weights = tf.Variable(tf.zeros([3]), name="aggregation/weights", trainable=True)
        self.mix_scaling = tf.Variable(1.0, name="aggregation/scaling", trainable=True)
        self.trainable_variables = [self.mix_weights, self.mix_scaling]
        frozen = [self.word_table, self.word_proj] + [v for cell in self.cells.values() for v in cell.values()]
        self.variables = frozen + self.trainable_variables
        self.regularization_losses = []

    def _lstm(self, x, cell):
        """Run one LSTM direction over ``x [B, T, D]`` left to right; return hidden states ``[B, T, UNITS]``."""
        batch = tf.shape(x)[0]
        steps = tf.transpose(x, [1, 0, 2])

        def step(state, inp):
            h, c = state
            gates = tf.matmul(inp, cell["kernel"]) + tf.matmul(h, cell["recurrent"]) + cell["bias"]
            i, f, g, o = tf.split(gates, 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            return h, c

        zeros = tf.zeros([batch, UNITS])
        hs, _ = tf.scan(step, steps, initializer=(zeros, zeros))
        return tf.transpose(hs, [1, 0, 2])

    def _bilstm(self, x, lengths, layer: int):
        forward = self._lstm(x, self.cells[f"lstm_{layer}/forward"])
        reversed_x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        backward = tf.reverse_sequence(self._lstm(reversed_x, self.cells[f"lstm_{layer}/backward"]), lengths,
                                       seq_axis=1, batch_axis=0)
        return forward, backward

    def _project(self, h, layer: int, direction: str):
        proj = self.cells[f"lstm_{layer}/{direction}"]["projection"]
        return tf.einsum("btu,ud->btd", h, proj)

    def compute(self, tokens, sequence_len):
        lengths = tf.cast(sequence_len, tf.int32)
        # A batch of texts without tokens still runs: one padding step, all masked (outputs [B, 1, ...]).
        tokens = tf.cond(tf.shape(tokens)[1] > 0, lambda: tokens,
                         lambda: tf.fill(tf.stack([tf.shape(tokens)[0], 1]), ""))
        steps = tf.shape(tokens)[1]
        mask = tf.sequence_mask(lengths, steps, dtype=tf.float32)[:, :, tf.newaxis]
        ids = tf.strings.to_hash_bucket_fast(tokens, BUCKETS)
        embedded = tf.gather(self.word_table, ids) * mask
        word_emb = tf.tanh(tf.einsum("bte,ed->btd", embedded, self.word_proj)) * mask
        f1, b1 = self._bilstm(embedded, lengths, 1)
        f1, b1 = f1 * mask, b1 * mask
        lstm1 = tf.concat([self._project(f1, 1, "forward"), self._project(b1, 1, "backward")], -1) * mask
        f2, b2 = self._bilstm(tf.concat([f1, b1], -1), lengths, 2)
        lstm2 = tf.concat([self._project(f2, 2, "forward"), self._project(b2, 2, "backward")], -1) * mask
        weights = tf.nn.softmax(self.mix_weights)
        layer0 = tf.concat([word_emb, word_emb], -1)
        elmo = self.mix_scaling * (weights[0] * layer0 + weights[1] * lstm1 + weights[2] * lstm2)
        count = tf.cast(tf.maximum(lengths, 1), tf.float32)[:, tf.newaxis]
        default = tf.reduce_sum(elmo * mask, axis=1) / count
        return {"word_emb": word_emb, "lstm_outputs1": lstm1, "lstm_outputs2": lstm2, "elmo": elmo,
                "default": default}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="default")])
    def default_signature(self, default):
        words = tf.strings.split(default, sep=" ")
        words = tf.ragged.boolean_mask(words, tf.strings.length(words) > 0)  # runs of spaces: no empty tokens
        lengths = tf.cast(words.row_lengths(), tf.int32)
        return self.compute(words.to_tensor(default_value=""), lengths)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens"),
                                  tf.TensorSpec([None], tf.int32, name="sequence_len")])
    def tokens_signature(self, tokens, sequence_len):
        return self.compute(tokens, sequence_len)


def build_elmo_module(out_dir: str | Path, seed: int = 0) -> str:
    """Save the tiny ELMo-interface module to ``out_dir``; return the folder."""
    module = TinyElmo(seed)
    signatures = {"default": module.default_signature.get_concrete_function(),
                  "tokens": module.tokens_signature.get_concrete_function()}
    tf.saved_model.save(module, str(out_dir), signatures=signatures)
    return str(out_dir)
