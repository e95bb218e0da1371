"""``tfhub-bert``: TF Hub BERT encoders (TF2 SavedModels with the TF Hub BERT encoder interface).

The encoder is called as TF Hub's BERT encoders are: ``encoder(dict(input_word_ids=,
input_mask=, input_type_ids=))``, int32 ``[batch, seq]``, returning ``pooled_output``,
``sequence_output``, ``encoder_outputs`` (one tensor per transformer block) and ``default``.
Text is tokenized with WordPiece built from the module's own ``vocab_file`` asset and
``do_lower_case`` variable (``tokenizers.BertWordPieceTokenizer``, the engine behind
transformers' ``BertTokenizerFast``), as ``[CLS] pieces [SEP]``, cut to ``max_length``
positions (cuts are counted; by default the size of the encoder's position table, 512 when it
cannot be read from the module). A blank text is ``[CLS] [SEP]``.

Outputs:

- ``doc``: the chosen ``layers`` pooled over real positions ([CLS], pieces, [SEP]; padding
  never) with ``pooling``: ``cls`` (the [CLS] position's hidden state; ``first`` is accepted too),
  ``mean`` (masked mean,
  ``sum(x*m) / (sum(m) + 1e-10)`` as the seeds' BertLayer), or ``max`` (masked maximum).
  One layer gives ``[dim]`` per text; several (or ``all``) give ``[layers, dim]`` (per layer,
  in the order given), so a head can learn the layer mix.
- ``pooled_output``: the module's pooler (dense + tanh on [CLS]), what the seeds' BertLayer
  called ``first``; it belongs to the last layer and ignores ``layers`` and ``pooling``.
- ``tokens``: one row per word piece, [CLS]/[SEP] left out (like the transformers plugin), per
  layer when several layers are chosen.

Shapes are bucketed (``bucketing=true``, see :mod:`embedx_tfhub.bucketing`) so the
``tf.function`` around the encoder traces a bounded number of times; ``traces`` counts them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from embedx.plugin_api import DOCUMENT, TOKEN, EmbedderUnavailable, Embeddings, OptionError, Output, Ragged
from embedx_tfhub.base import REQUIRES, TfHubEmbedder
from embedx_tfhub.bucketing import MIN_LENGTH, bucket
from embedx_tfhub.layers import parse_layers, resolve_layers

Pooling = Literal["cls", "mean", "max"]
MEAN_EPSILON = 1e-10
DEFAULT_MAX_LENGTH = 512  # BERT's position table


class TfHubBert(TfHubEmbedder):
    """A TF Hub BERT encoder (URL or folder) with its own WordPiece vocabulary, pooled per text.

    Options:
        model: the encoder's TF Hub URL (served from the TF Hub cache) or a local module folder
        pooling: cls (the [CLS] position), mean or max over the text's real positions
        layers: which blocks (-1 = last, 1..L, -1,-2, all); several are stored per layer
        max_length: word pieces kept per text, [CLS] and [SEP] included
        bucketing: pad lengths to a few shapes so TensorFlow traces few graphs (same numbers)
        trust_module: load a module folder whose graph reads or writes files or runs Python (skips the scan)
    """

    id = "tfhub-bert"
    description = "TF Hub BERT encoder (TF2, encoder_outputs per layer): cls/mean/max pooling, pooled_output, tokens"
    outputs = (
        Output("doc", DOCUMENT, description="the chosen layers pooled per text (cls, mean or max)"),
        Output("pooled_output", DOCUMENT, description="the module's pooler: dense + tanh on [CLS] (last layer)"),
        Output("tokens", TOKEN, description="hidden states per word piece, [CLS]/[SEP] left out"),
    )
    default_outputs = ("doc",)
    requires = REQUIRES | {"tokenizers": "pip install tokenizers"}
    versioned = ("tensorflow", "tensorflow-hub", "tokenizers")
    # Bucketing pads with masked positions and rows: it changes the speed, not the numbers.
    unkeyed_options = ("model", "bucketing", "trust_module")
    pooling_choices = ("cls", "mean", "max")  # "first" still accepted for cls
    layer_options = True
    batch_size = 32

    def __init__(self, model: str, pooling: Pooling = "mean", layers: str = "-1", max_length: int | None = None,
                 bucketing: bool = True, trust_module: bool = False):
        if pooling not in ("cls", "mean", "max"):
            raise ValueError(f"pooling={pooling!r}: choose cls, mean or max")
        if max_length is not None and max_length < 3:
            raise ValueError("max_length must be at least 3 ([CLS], one piece, [SEP])")
        self._init_handle(model, trust_module)
        self.pooling, self.layers_text, self.bucketing = pooling, layers, bucketing
        self.layer_spec = parse_layers(layers)
        self.max_length_option = max_length
        self.max_length = max_length or DEFAULT_MAX_LENGTH  # capped at the position table's size on load
        self.hidden: int | None = None
        self.num_layers: int | None = None
        self.layer_indices: tuple[int, ...] = ()
        self.traces = 0  # how many times the tf.function was traced (see bucketing)
        self._largest_batch = 0
        self._fn: Any = None
        self._tokenizer: Any = None

    # -- what identifies the output -------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return super().identity() | {"tokenizer": "tokenizers.BertWordPieceTokenizer(module vocab_file, "
                                                  "lowercase=module do_lower_case)",
                                     "input": "[CLS] pieces [SEP], cut at max_length", "mean_epsilon": MEAN_EPSILON}

    @property
    def per_layer(self) -> bool:
        return self.layer_spec is None or len(self.layer_spec) > 1

    def output_specs(self) -> tuple[Output, ...]:
        n = len(self.layer_spec) if self.layer_spec is not None else self.num_layers
        layers = n if self.per_layer else None
        specs = []
        for out in self.outputs:
            if out.name == "pooled_output":
                specs.append(Output(out.name, out.level, dim=self.hidden, description=out.description))
            else:
                specs.append(Output(out.name, out.level, dim=self.hidden, per_layer=self.per_layer, layers=layers,
                                    description=out.description))
        return tuple(specs)

    # -- loading --------------------------------------------------------------------
    def load(self) -> None:
        from embedx_tfhub import _tf

        tf = _tf.tensorflow()
        module = self._load_module()
        if not callable(module) or not hasattr(module, "vocab_file") or not hasattr(module, "do_lower_case"):
            raise EmbedderUnavailable(
                f"TF Hub module {self.handle} is not a TF2 BERT encoder: it needs a callable taking "
                "input_word_ids/input_mask/input_type_ids and the vocab_file and do_lower_case attributes "
                "(TF Hub's bert_en_*_L-*_H-*_A-*/3 and later, or `embedx tfhub convert-bert`)")
        self._tokenizer, self._special = module_wordpiece(module)
        ones = tf.ones([1, 2], tf.int32)
        probe = module({"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros([1, 2], tf.int32)})
        self.num_layers = len(probe["encoder_outputs"])
        self.hidden = int(probe["sequence_output"].shape[-1])
        positions = _positions(module)
        if positions is not None:
            if self.max_length_option is None:
                self.max_length = min(self.max_length, positions)
            elif self.max_length > positions:
                raise OptionError(f"max_length={self.max_length} exceeds the {positions} positions this encoder reads")
        try:
            self.layer_indices = resolve_layers(self.layer_spec, self.num_layers)
        except ValueError as exc:
            raise OptionError(str(exc)) from None
        self._fn = self._build_function(tf, module, set(self.requested_outputs or self.default_outputs))

    def _build_function(self, tf: Any, module: Any, wanted: set[str]) -> Any:
        indices, pooling = self.layer_indices, self.pooling

        @tf.function
        def run(ids, mask, type_ids):
            self.traces += 1  # Python side effect: runs once per trace, never per call
            out = module({"input_word_ids": ids, "input_mask": mask, "input_type_ids": type_ids})
            layers = tf.stack([out["encoder_outputs"][i] for i in indices], axis=1)  # [B, k, T, H]
            result = {}
            if "doc" in wanted:
                if pooling == "cls":
                    result["doc"] = layers[:, :, 0]
                else:
                    m = tf.cast(mask, layers.dtype)[:, tf.newaxis, :, tf.newaxis]
                    if pooling == "mean":
                        result["doc"] = tf.reduce_sum(layers * m, axis=2) / (tf.reduce_sum(m, axis=2) + MEAN_EPSILON)
                    else:
                        result["doc"] = tf.reduce_max(tf.where(m > 0, layers, float("-inf")), axis=2)
            if "pooled_output" in wanted:
                result["pooled_output"] = out["pooled_output"]
            if "tokens" in wanted:
                result["tokens"] = tf.transpose(layers, [0, 2, 1, 3])  # [B, T, k, H]
            return result

        return run

    # -- embedding ------------------------------------------------------------------
    def encode(self, texts: list[str]) -> tuple[list[list[int]], list[list[str]], list[int]]:
        """WordPiece ids and strings per text (no special tokens), cut to ``max_length - 2``; and the cuts."""
        capacity = self.max_length - 2
        ids, pieces, cuts = [], [], []
        for enc in self._tokenizer.encode_batch(list(texts), add_special_tokens=False):
            cut = max(0, len(enc.ids) - capacity)
            ids.append(enc.ids[:capacity])
            pieces.append(enc.tokens[:capacity])
            cuts.append(cut)
        return ids, pieces, cuts

    def embed_batch(self, texts: list[str]) -> Embeddings:
        self._ensure_loaded()
        from embedx_tfhub import _tf

        tf = _tf.tensorflow()
        ids, pieces, cuts = self.encode(texts)
        n = len(texts)
        self._largest_batch = max(self._largest_batch, n)
        length = max(len(p) for p in ids) + 2 if n else 2
        rows, width = n, length
        if self.bucketing:
            width = bucket(length, self.max_length, MIN_LENGTH)
            rows = bucket(n, self._largest_batch)
        cls, sep, pad = self._special
        word_ids = np.full((rows, width), pad, np.int32)
        mask = np.zeros((rows, width), np.int32)
        for i, p in enumerate(ids):
            word_ids[i, : len(p) + 2] = [cls, *p, sep]
            mask[i, : len(p) + 2] = 1
        result = self._fn(tf.constant(word_ids), tf.constant(mask), tf.constant(np.zeros_like(word_ids)))
        outputs: dict[str, Any] = {}
        for name in self.requested_outputs or self.default_outputs:
            value = np.asarray(result[name])[:n]
            if name == "doc":
                outputs[name] = value if self.per_layer else value[:, 0]
            elif name == "pooled_output":
                outputs[name] = value
            else:
                arrays = [value[i, 1: len(p) + 1] for i, p in enumerate(ids)]  # drop [CLS], [SEP], padding
                if not self.per_layer:
                    arrays = [a[:, 0] for a in arrays]
                outputs[name] = Ragged(arrays, [list(p) for p in pieces])
        return Embeddings(outputs, cuts)


def _positions(module: Any) -> int | None:
    """Rows of the encoder's position embedding table (``position_embedding/embeddings``), if it has one."""
    for variable in getattr(module, "variables", []):
        if "position_embedding" in variable.name and len(variable.shape) == 2:
            return int(variable.shape[0])
    return None


def module_wordpiece(module: Any) -> tuple[Any, tuple[int, int, int]]:
    """The WordPiece tokenizer of a TF Hub BERT encoder and its [CLS], [SEP], [PAD] ids."""
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    vocab = module.vocab_file.asset_path.numpy().decode("utf-8")
    lowercase = bool(module.do_lower_case.numpy())
    tokenizer = BertWordPieceTokenizer(
        WordPiece.read_file(vocab), lowercase=lowercase, strip_accents=None, clean_text=True, handle_chinese_chars=True
    )
    special = []
    for token in ("[CLS]", "[SEP]", "[PAD]"):
        index = tokenizer.token_to_id(token)
        if index is None:
            raise EmbedderUnavailable(f"the module's vocabulary {vocab} has no {token}")
        special.append(index)
    return tokenizer, (special[0], special[1], special[2])
