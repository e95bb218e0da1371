"""A bidirectional language model with ELMo's architecture (Peters et al. 2018), in plain TensorFlow 2.

The same :class:`BiLM` object is trained (:mod:`.elmo_train`) and saved as the module
(:mod:`.elmo_export`), so the exported ``word_emb`` / ``lstm_outputs1`` / ``lstm_outputs2`` are the
trained model's own forward pass, computed by the same code:

1. **Characters.** Each token's UTF-8 bytes, cut to ``max_chars - 2``, framed by begin- and
   end-of-word marks (ids: 0 padding, 1-256 bytes, 257 begin of word, 258 end of word, 259 / 260
   the sentence-start and sentence-end tokens, which no text can produce).
2. **Token encoder.** A 16-d character embedding, one convolution per ``(width, filters)`` pair,
   max-pooled over the characters, ReLU; ``highway`` highway layers; a linear projection to
   ``projection_dim`` (512, ELMo's): ``word_emb``. Each distinct token of a batch is encoded once.
3. **Two biLSTM layers with projections.** Forward and backward stacks are separate language
   models, each layer an LSTM with a ``cell_dim`` memory cell whose output is projected to
   ``projection_dim`` (LSTMP), cell and projection clipped to +-3 as in ELMo. The second layer adds
   its input (a residual connection). ``lstm_outputs1`` / ``lstm_outputs2`` are forward and
   backward concatenated (1024-d for 512).
4. **Language-model losses.** A softmax over the corpus vocabulary (shared by both directions):
   the forward top layer predicts the next token, the backward one the previous token. Training
   uses a sampled softmax (``n_samples`` negatives from a log-uniform sampler over the
   frequency-sorted vocabulary) or the full one (``n_samples=0``); perplexity is always the full softmax.

Every sentence is wrapped in the start and end tokens (as bilm-tf's batcher does); the module
strips them from its outputs. Both directions run in one ``tf.scan`` (the weights of the two
directions are stacked), and the input half of the gates is computed for every step at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedx_tfhub._tf import tensorflow

tf = tensorflow()

PAD_CHAR, BOW_CHAR, EOW_CHAR, BOS_CHAR, EOS_CHAR = 0, 257, 258, 259, 260
N_CHARS = 261
#: Vocabulary ids fixed by construction: the words follow, most frequent first.
BOS, EOS, UNK = "<S>", "</S>", "<UNK>"
SPECIALS = (BOS, EOS, UNK)


@dataclass(frozen=True)
class BiLMConfig:
    """Sizes of the biLM. ELMo's original: 2048 filters up to width 7, cell 4096, projection 512."""

    vocab_size: int
    max_chars: int = 20
    char_dim: int = 16
    filters: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256))
    highway: int = 2
    cell_dim: int = 512
    projection_dim: int = 512
    clip: float = 3.0
    dropout: float = 0.1
    n_samples: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.vocab_size < len(SPECIALS) + 1:
            problems.append(f"vocab_size {self.vocab_size}: the corpus must give at least one word")
        if self.max_chars < 3:
            problems.append(f"max_chars {self.max_chars}: at least 3 (two word marks and one byte)")
        if not self.filters or any(w < 1 or n < 1 for w, n in self.filters):
            problems.append(f"filters {self.filters}: give (width, count) pairs, both at least 1")
        elif max(w for w, _ in self.filters) > self.max_chars:
            problems.append(f"filters: a width above max_chars ({self.max_chars}) sees no token")
        for name in ("char_dim", "cell_dim", "projection_dim"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.highway < 0 or self.n_samples < 0 or not 0 <= self.dropout < 1 or self.clip <= 0:
            problems.append("highway and n_samples must be >= 0, dropout in [0, 1), clip > 0")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["filters"] = [list(f) for f in self.filters]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BiLMConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["filters"] = tuple(tuple(int(x) for x in f) for f in known.get("filters", cls.filters))
        return cls(**known)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


class BiLM(tf.Module):
    """Character CNN + highway + projection, two biLSTMP layers (residual on the second), shared softmax."""

    def __init__(self, config: BiLMConfig, name: str = "bilm"):
        super().__init__(name=name)
        self.config = config
        c = config
        rng = np.random.default_rng(c.seed)

        def var(vname: str, shape: tuple[int, ...], scale: float | None = None, value: float | None = None):
            if value is not None:
                init = np.full(shape, value, np.float32)
            else:
                fan_in = shape[-2] if len(shape) > 1 else shape[0]
                init = rng.normal(0.0, scale if scale is not None else 1.0 / np.sqrt(fan_in), shape).astype(np.float32)
            return tf.Variable(init, name=vname)

        n_filters = sum(n for _, n in c.filters)
        self.char_embedding = var("char_cnn/char_embed", (N_CHARS, c.char_dim), scale=1.0)
        self.conv_kernels = [var(f"char_cnn/W_cnn_{i}", (w, c.char_dim, n)) for i, (w, n) in enumerate(c.filters)]
        self.conv_biases = [var(f"char_cnn/b_cnn_{i}", (n,), value=0.0) for i, (_, n) in enumerate(c.filters)]
        self.highway_kernels = [var(f"char_cnn/highway_{i}/W", (n_filters, 2 * n_filters)) for i in range(c.highway)]
        # the carry gate starts mostly open (bias -2 on the transform gate), as in ELMo
        self.highway_biases = [tf.Variable(np.concatenate([np.zeros(n_filters), np.full(n_filters, -2.0)])
                                           .astype(np.float32), name=f"char_cnn/highway_{i}/b")
                               for i in range(c.highway)]
        self.token_projection = var("char_cnn/W_proj", (n_filters, c.projection_dim))
        self.token_projection_bias = var("char_cnn/b_proj", (c.projection_dim,), value=0.0)
        # [direction (0 forward, 1 backward), ...] per layer
        p, h = c.projection_dim, c.cell_dim
        self.lstm_input_kernels, self.lstm_recurrent_kernels, self.lstm_biases, self.lstm_projections = [], [], [], []
        for layer in (1, 2):
            self.lstm_input_kernels.append(var(f"lstm_{layer}/W_input", (2, p, 4 * h)))
            self.lstm_recurrent_kernels.append(var(f"lstm_{layer}/W_recurrent", (2, p, 4 * h)))
            bias = np.zeros((2, 4 * h), np.float32)
            bias[:, h:2 * h] = 1.0  # forget gate (order i, f, g, o)
            self.lstm_biases.append(tf.Variable(bias, name=f"lstm_{layer}/b"))
            self.lstm_projections.append(var(f"lstm_{layer}/W_proj", (2, h, p)))
        self.softmax_weights = var("softmax/W", (c.vocab_size, p), scale=1.0 / np.sqrt(p))
        self.softmax_bias = var("softmax/b", (c.vocab_size,), value=0.0)

    # -- parameters ------------------------------------------------------------------------------
    def encoder_variables(self) -> list[Any]:
        """What the module keeps: everything but the softmax."""
        return [v for v in self.trainable_variables if not v.name.startswith("softmax/")]

    def parameter_counts(self) -> dict[str, int]:
        encoder = sum(int(np.prod(v.shape)) for v in self.encoder_variables())
        softmax = int(np.prod(self.softmax_weights.shape)) + int(np.prod(self.softmax_bias.shape))
        return {"encoder": encoder, "softmax": softmax, "total": encoder + softmax}

    # -- characters ------------------------------------------------------------------------------
    def char_ids(self, tokens: Any) -> Any:
        """``[N]`` strings -> ``[N, max_chars]`` int32: begin mark, the first bytes, end mark, padding."""
        n = self.config.max_chars - 2
        raw = tf.cast(tf.io.decode_raw(tokens, tf.uint8, fixed_length=n), tf.int32) + 1
        length = tf.minimum(tf.strings.length(tokens), n)
        positions = tf.range(n)[tf.newaxis, :]
        body = tf.where(positions < length[:, tf.newaxis], raw, PAD_CHAR)
        framed = tf.concat([tf.fill([tf.shape(tokens)[0], 1], BOW_CHAR), body,
                            tf.zeros([tf.shape(tokens)[0], 1], tf.int32)], axis=1)
        end = tf.one_hot(length + 1, n + 2, on_value=EOW_CHAR, off_value=0, dtype=tf.int32)
        return framed + end

    def encode_chars(self, chars: Any, training: bool = False) -> Any:
        """``[N, max_chars]`` character ids -> ``[N, projection_dim]`` token vectors."""
        # one padding row more, dropped at the end: TensorFlow's convolution cannot take an empty batch
        chars = tf.concat([chars, tf.zeros([1, self.config.max_chars], tf.int32)], axis=0)
        x = tf.gather(self.char_embedding, chars)  # [N + 1, C, char_dim]
        pooled = []
        for kernel, bias in zip(self.conv_kernels, self.conv_biases, strict=True):
            conv = tf.nn.conv1d(x, kernel, stride=1, padding="VALID") + bias
            pooled.append(tf.nn.relu(tf.reduce_max(conv, axis=1)))
        y = tf.concat(pooled, axis=-1)
        for kernel, bias in zip(self.highway_kernels, self.highway_biases, strict=True):
            transform, gate = tf.split(tf.matmul(y, kernel) + bias, 2, axis=-1)
            gate = tf.sigmoid(gate)
            y = gate * tf.nn.relu(transform) + (1.0 - gate) * y
        return (tf.matmul(y, self.token_projection) + self.token_projection_bias)[:-1]

    def token_vectors(self, tokens: Any, training: bool = False) -> Any:
        """``[B, T]`` strings -> ``[B, T, projection_dim]``, each distinct string encoded once."""
        flat = tf.reshape(tokens, [-1])
        unique, index = tf.unique(flat)
        vectors = tf.gather(self.encode_chars(self.char_ids(unique), training), index)
        return tf.reshape(vectors, tf.concat([tf.shape(tokens), [self.config.projection_dim]], 0))

    def boundary_vectors(self, training: bool = False) -> Any:
        """The sentence-start and sentence-end token vectors ``[2, projection_dim]``."""
        rows = np.zeros((2, self.config.max_chars), np.int32)
        rows[:, 0], rows[:, 2] = BOW_CHAR, EOW_CHAR
        rows[0, 1], rows[1, 1] = BOS_CHAR, EOS_CHAR
        return self.encode_chars(tf.constant(rows), training)

    # -- the biLSTM ------------------------------------------------------------------------------
    def _bilstm_layer(self, inputs: Any, lengths: Any, layer: int) -> Any:
        """``inputs [2, B, T, P]`` (direction-major, the backward one already reversed) -> ``[2, B, T, P]``."""
        c = self.config
        w_in, w_rec = self.lstm_input_kernels[layer], self.lstm_recurrent_kernels[layer]
        bias, proj = self.lstm_biases[layer], self.lstm_projections[layer]
        gates_in = tf.einsum("kbtp,kpg->tkbg", inputs, w_in) + bias[:, tf.newaxis, :]  # [T, 2, B, 4H]
        batch = tf.shape(inputs)[1]

        def step(state, x_t):
            h, cell = state
            gates = x_t + tf.einsum("kbp,kpg->kbg", h, w_rec)
            i, f, g, o = tf.split(gates, 4, axis=-1)
            cell = tf.clip_by_value(tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g), -c.clip, c.clip)
            h = tf.clip_by_value(tf.einsum("kbh,khp->kbp", tf.sigmoid(o) * tf.tanh(cell), proj), -c.clip, c.clip)
            return h, cell

        init = (tf.zeros([2, batch, c.projection_dim]), tf.zeros([2, batch, c.cell_dim]))
        hs, _ = tf.scan(step, gates_in, initializer=init)  # [T, 2, B, P]
        return tf.transpose(hs, [1, 2, 0, 3])

    def layers(self, tokens: Any, lengths: Any, training: bool = False) -> dict[str, Any]:
        """Run the biLM on ``tokens [B, T]`` (padded with anything) of ``lengths [B]`` real tokens.

        Returns, over ``T + 2`` positions (sentence start, the tokens, sentence end, padding):
        ``word`` ``[B, T+2, P]``, per layer ``forward_k`` / ``backward_k`` ``[B, T+2, P]`` (k = 1, 2;
        ``_2`` includes the residual), ``mask`` ``[B, T+2]`` float and ``full_lengths`` (``lengths + 2``).
        """
        c = self.config
        lengths = tf.cast(lengths, tf.int32)
        batch, steps = tf.shape(tokens)[0], tf.shape(tokens)[1]
        full_lengths = lengths + 2
        boundary = self.boundary_vectors(training)
        words = self.token_vectors(tokens, training)
        start = tf.tile(boundary[tf.newaxis, 0:1], [batch, 1, 1])
        seq = tf.concat([start, words, tf.zeros([batch, 1, c.projection_dim])], axis=1)  # [B, T+2, P]
        end_at = tf.one_hot(lengths + 1, steps + 2, dtype=seq.dtype)[:, :, tf.newaxis]
        seq = seq * (1.0 - end_at) + end_at * boundary[1]
        mask = tf.sequence_mask(full_lengths, steps + 2, dtype=seq.dtype)
        seq = seq * mask[:, :, tf.newaxis]
        out = {"word": seq, "mask": mask, "full_lengths": full_lengths}

        def reverse(x):
            return tf.reverse_sequence(x, full_lengths, seq_axis=1, batch_axis=0)

        x = self._dropout(seq, training)
        stacked = tf.stack([x, reverse(x)])  # [2, B, T+2, P]
        for layer in (0, 1):
            hs = self._bilstm_layer(stacked, full_lengths, layer)
            if layer == 1:
                hs = hs + stacked  # residual connection around the second layer
            forward, backward = hs[0] * mask[:, :, tf.newaxis], reverse(hs[1]) * mask[:, :, tf.newaxis]
            out[f"forward_{layer + 1}"], out[f"backward_{layer + 1}"] = forward, backward
            stacked = tf.stack([self._dropout(forward, training), reverse(self._dropout(backward, training))])
        return out

    def _dropout(self, x: Any, training: bool) -> Any:
        return tf.nn.dropout(x, rate=self.config.dropout) if training and self.config.dropout > 0 else x

    # -- language-model losses ----------------------------------------------------------------------
    def _targets(self, layers: dict[str, Any], target_ids: Any) -> tuple[Any, Any, Any, Any]:
        """Top-layer states and the ids they predict.

        Forward at 0..n predicts 1..n+1, backward at 1..n+1 predicts 0..n.
        """
        valid = tf.sequence_mask(layers["full_lengths"] - 1, tf.shape(target_ids)[1] - 1)
        fwd_h = tf.boolean_mask(layers["forward_2"][:, :-1], valid)
        fwd_y = tf.boolean_mask(target_ids[:, 1:], valid)
        bwd_h = tf.boolean_mask(layers["backward_2"][:, 1:], valid)
        bwd_y = tf.boolean_mask(target_ids[:, :-1], valid)
        return fwd_h, fwd_y, bwd_h, bwd_y

    def _full_nll(self, h: Any, y: Any) -> Any:
        logits = tf.matmul(h, self.softmax_weights, transpose_b=True) + self.softmax_bias
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)

    def _sampled_nll(self, h: Any, y: Any) -> Any:
        return tf.nn.sampled_softmax_loss(
            weights=self.softmax_weights, biases=self.softmax_bias, labels=tf.cast(y[:, tf.newaxis], tf.int64),
            inputs=h, num_sampled=min(self.config.n_samples, self.config.vocab_size - 1),
            num_classes=self.config.vocab_size, remove_accidental_hits=True)

    def loss(self, tokens: Any, lengths: Any, target_ids: Any, training: bool = True) -> tuple[Any, Any]:
        """Mean training loss of both directions (sampled softmax when ``n_samples`` > 0) and the target count."""
        fwd_h, fwd_y, bwd_h, bwd_y = self._targets(self.layers(tokens, lengths, training), target_ids)
        nll = self._sampled_nll if self.config.n_samples > 0 and training else self._full_nll
        total = tf.reduce_sum(nll(fwd_h, fwd_y)) + tf.reduce_sum(nll(bwd_h, bwd_y))
        count = tf.shape(fwd_y)[0]
        return total / tf.cast(2 * count, tf.float32), count

    def nll_sums(self, tokens: Any, lengths: Any, target_ids: Any) -> tuple[Any, Any, Any]:
        """Summed full-softmax negative log-likelihood, forward and backward, and the number of predictions."""
        fwd_h, fwd_y, bwd_h, bwd_y = self._targets(self.layers(tokens, lengths, False), target_ids)
        return (tf.reduce_sum(self._full_nll(fwd_h, fwd_y)), tf.reduce_sum(self._full_nll(bwd_h, bwd_y)),
                tf.shape(fwd_y)[0])

    # -- what the module returns ------------------------------------------------------------------
    def features(self, tokens: Any, lengths: Any) -> dict[str, Any]:
        """The ELMo layers for ``tokens [B, T]``: ``word_emb [B, T, P]``, ``lstm_outputs1/2 [B, T, 2P]``,
        sentence marks stripped, zeros past each length."""
        out = self.layers(tokens, lengths, training=False)
        steps = tf.shape(tokens)[1]
        mask = tf.sequence_mask(tf.cast(lengths, tf.int32), steps, dtype=tf.float32)[:, :, tf.newaxis]

        def inner(x):
            return x[:, 1:steps + 1] * mask

        return {"word_emb": inner(out["word"]),
                "lstm_outputs1": inner(tf.concat([out["forward_1"], out["backward_1"]], -1)),
                "lstm_outputs2": inner(tf.concat([out["forward_2"], out["backward_2"]], -1))}
