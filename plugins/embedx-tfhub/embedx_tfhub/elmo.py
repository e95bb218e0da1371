"""``elmo``: TF Hub ELMo (``google/elmo/3`` and modules with its interface), every layer kept.

Tokens are the text split on whitespace. With ``signature=default`` the module receives the
tokens joined by single spaces (it splits on spaces itself, so both sides agree on the tokens;
tabs and newlines would otherwise be characters of a token); with ``signature=tokens`` it
receives the padded token matrix and ``sequence_len``. ``max_length`` keeps the first tokens
and counts the rest as cut.

Outputs (names as the module's, plus two for learning the layer mix later):

- ``layers`` (token, per layer ``[n_tokens, 3, 1024]``): layer 0 is ``word_emb`` duplicated to
  1024 (``[w, w]``, as AllenNLP's ``elmo --all`` and the module's own ``elmo`` mix do), layers 1
  and 2 are ``lstm_outputs1`` and ``lstm_outputs2``: a head can learn ELMo's scalar mix from it;
- ``word_emb`` (token, 512), ``lstm_outputs1``, ``lstm_outputs2``, ``elmo`` (token, 1024);
- ``default`` (document, 1024): the module's mean-pooled vector (the default output);
- ``layers_mean`` (document, per layer ``[3, 1024]``): the mean over tokens of each of the three
  layers, so a document-level head can learn the mix without storing every token.

Padding is never returned: token outputs keep the first ``sequence_len`` rows of each text.
A blank text (empty or whitespace only: no tokens) is not sent to the module (the real module
has nothing to pool and may return NaN or fail on a batch of them); its token outputs have zero
rows and its ``default`` and ``layers_mean`` are zeros. A batch of only blank texts never runs
the module.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from embedx.plugin_api import DOCUMENT, TOKEN, EmbedderOutputError, EmbedderUnavailable, Embeddings, Output, Ragged
from embedx_tfhub.base import TfHubEmbedder

ELMO_URL = "https://tfhub.dev/google/elmo/3"
WORD_DIM, LSTM_DIM = 512, 1024
MODULE_OUTPUTS = ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default")
Signature = Literal["default", "tokens"]


class Elmo(TfHubEmbedder):
    """ELMo through TF Hub: per-layer token features, the module's ``elmo`` mix and ``default`` vector.

    Options:
        model: the module's TF Hub URL (served from the TF Hub cache) or a local module folder
        signature: default (the module tokenizes on spaces) or tokens (embedx splits, padded per batch)
        max_length: tokens kept per text; the rest is cut and counted
        trust_module: load a module folder whose graph reads or writes files or runs Python (skips the scan)
    """

    id = "elmo"
    description = "ELMo (TF Hub google/elmo/3 interface): per-layer token features, elmo mix, mean-pooled default"
    outputs = (
        Output("default", DOCUMENT, dim=LSTM_DIM, description="the module's mean-pooled vector (zeros for "
                                                              "a blank text)"),
        Output("layers_mean", DOCUMENT, dim=LSTM_DIM, per_layer=True, layers=3,
               description="mean over tokens of [word_emb x2, lstm_outputs1, lstm_outputs2]"),
        Output("layers", TOKEN, dim=LSTM_DIM, per_layer=True, layers=3,
               description="per token: word_emb duplicated to 1024, lstm_outputs1, lstm_outputs2"),
        Output("word_emb", TOKEN, dim=WORD_DIM, description="character-based word representation"),
        Output("lstm_outputs1", TOKEN, dim=LSTM_DIM, description="first biLSTM layer"),
        Output("lstm_outputs2", TOKEN, dim=LSTM_DIM, description="second biLSTM layer"),
        Output("elmo", TOKEN, dim=LSTM_DIM, description="the module's weighted sum of the 3 layers"),
    )
    default_outputs = ("default",)
    batch_size = 32

    def __init__(self, model: str = ELMO_URL, signature: Signature = "default", max_length: int | None = None,
                 trust_module: bool = False):
        if max_length is not None and max_length < 1:
            raise ValueError("max_length must be at least 1 (or none)")
        if signature not in ("default", "tokens"):
            raise ValueError(f"signature={signature!r}: choose default or tokens")
        self._init_handle(model, trust_module)
        self.signature, self.max_length = signature, max_length
        self._run: Any = None

    def identity(self) -> dict[str, Any]:
        return super().identity() | {"tokens": "whitespace split", "blank": "zeros, module not called"}

    def load(self) -> None:
        from embedx_tfhub import _tf

        tf = _tf.tensorflow()
        module = self._load_module()
        signatures = getattr(module, "signatures", {})
        if self.signature not in signatures:
            raise EmbedderUnavailable(f"TF Hub module {self.handle} has no {self.signature!r} signature "
                                      f"(it has: {', '.join(signatures) or 'none'}); is it an ELMo module?")
        function = signatures[self.signature]
        if self.signature == "default":
            def run(token_lists):
                return function(default=tf.constant([" ".join(t) for t in token_lists], dtype=tf.string))
        else:
            def run(token_lists):
                width = max(len(t) for t in token_lists)
                padded = [t + [""] * (width - len(t)) for t in token_lists]
                return function(tokens=tf.constant(padded, dtype=tf.string),
                                sequence_len=tf.constant([len(t) for t in token_lists], dtype=tf.int32))
        self._run = run

    def tokenize(self, text: str) -> tuple[list[str], int]:
        tokens = text.split()
        if self.max_length is not None and len(tokens) > self.max_length:
            return tokens[: self.max_length], len(tokens) - self.max_length
        return tokens, 0

    def embed_batch(self, texts: list[str]) -> Embeddings:
        self._ensure_loaded()
        requested = self.requested_outputs or self.default_outputs
        token_lists, truncated = zip(*(self.tokenize(t) for t in texts), strict=True) if texts else ((), ())
        token_lists = list(token_lists)
        live = [i for i, tokens in enumerate(token_lists) if tokens]
        raw: dict[str, np.ndarray] = {}
        if live:
            result = self._run([token_lists[i] for i in live])
            for name in MODULE_OUTPUTS:
                if name in result:
                    raw[name] = np.asarray(result[name], dtype=np.float32)
            missing = [n for n in MODULE_OUTPUTS if n not in raw]
            if missing:
                raise EmbedderOutputError(f"ELMo module {self.handle} returned no {', '.join(missing)} "
                                          f"(outputs: {', '.join(result)})")
        row_of = {i: r for r, i in enumerate(live)}
        outputs: dict[str, Any] = {}
        for name in requested:
            outputs[name] = self._output(name, raw, token_lists, row_of)
        return Embeddings(outputs, list(truncated))

    def _output(self, name: str, raw: dict[str, np.ndarray], token_lists: list[list[str]],
                row_of: dict[int, int]) -> Any:
        n = len(token_lists)
        if name == "default":
            out = np.zeros((n, LSTM_DIM), np.float32)
            for i, r in row_of.items():
                out[i] = raw["default"][r]
            return out
        if name == "layers_mean":
            out = np.zeros((n, 3, LSTM_DIM), np.float32)
            for i, r in row_of.items():
                out[i] = self._stack(raw, r, len(token_lists[i])).mean(axis=0)
            return out
        dim = WORD_DIM if name == "word_emb" else LSTM_DIM
        empty = (0, 3, LSTM_DIM) if name == "layers" else (0, dim)
        arrays = []
        for i, tokens in enumerate(token_lists):
            if i not in row_of:
                arrays.append(np.zeros(empty, np.float32))
            elif name == "layers":
                arrays.append(self._stack(raw, row_of[i], len(tokens)))
            else:
                arrays.append(raw[name][row_of[i], : len(tokens)])  # never the padded positions
        return Ragged(arrays, [list(t) for t in token_lists])

    @staticmethod
    def _stack(raw: dict[str, np.ndarray], row: int, length: int) -> np.ndarray:
        word = raw["word_emb"][row, :length]
        return np.stack([np.concatenate([word, word], axis=-1), raw["lstm_outputs1"][row, :length],
                         raw["lstm_outputs2"][row, :length]], axis=1)
