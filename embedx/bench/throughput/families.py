"""What a throughput run asks of an embedder family: its token count, its FLOPs per token, and its peer.

Any embedder may answer for itself with optional methods, and a third-party plugin needs nothing
else (none is required; the run works without them):

- ``count_tokens(texts) -> list[int]``: tokens per text as the model sees them (default: words);
- ``flops_per_token(mean_tokens) -> float``: matrix-multiply FLOPs per real token at that mean
  length, for the fraction of the measured GEMM peak (default: none, no fraction reported);
- ``throughput_peer()``: a peer (see :mod:`.peers`) reproducing its default document output, or
  ``None``.

The built-in families answer through the small table :data:`FAMILIES`, keyed by the embedder
class (subclasses inherit their base's entry). The table only names adapters; the frameworks
they use are imported when a run needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embedx.contract.embedder import Embedder


@dataclass
class Family:
    """How to ask one family; every field may be ``None`` (the generic answer)."""

    name: str
    token_unit: str = "whitespace word"
    count_tokens: Callable[[Any, list[str]], list[int]] | None = None
    flops_per_token: Callable[[Any, float], float | None] | None = None
    peer: Callable[[Any], Any] | None = None  # returns a peer, or raises NoPeer with the reason


class NoPeer(Exception):
    """This configuration has no peer; the message says why."""


def family_of(embedder: Embedder) -> Family:
    """The embedder's own declarations first, then the table entry of its class or a base class."""
    entry = Family("generic")
    for klass in type(embedder).__mro__:
        key = f"{klass.__module__}.{klass.__qualname__}"
        if key in FAMILIES:
            entry = FAMILIES[key]()
            break
    own = Family(entry.name, entry.token_unit, entry.count_tokens, entry.flops_per_token, entry.peer)
    if callable(getattr(embedder, "count_tokens", None)):
        own.count_tokens = lambda e, texts: [int(n) for n in e.count_tokens(texts)]
        own.token_unit = getattr(embedder, "token_unit", "token (the plugin's count)")
    if callable(getattr(embedder, "flops_per_token", None)):
        own.flops_per_token = lambda e, mean: e.flops_per_token(mean)
    if callable(getattr(embedder, "throughput_peer", None)):
        def plugin_peer(e: Any) -> Any:
            peer = e.throughput_peer()
            if peer is None:
                raise NoPeer("the plugin declares no peer for these options")
            return peer

        own.peer = plugin_peer
    return own


def tokens(family: Family, embedder: Embedder, texts: list[str]) -> list[int]:
    if family.count_tokens is None:
        return [len(t.split()) for t in texts]
    return family.count_tokens(embedder, texts)


def peer_for(family: Family, embedder: Embedder) -> tuple[Any | None, str | None]:
    """``(peer, None)`` or ``(None, why not)``."""
    if family.peer is None:
        return None, f"no peer known for the {family.name} family"
    try:
        return family.peer(embedder), None
    except NoPeer as exc:
        return None, str(exc)


# -- transformers: SentenceTransformer.encode, FLOPs from the config --------------------------------

_TOKENIZERS: dict[str, Any] = {}


def _hf_tokenizer(folder: str) -> Any:
    if folder not in _TOKENIZERS:
        from transformers import AutoTokenizer

        _TOKENIZERS[folder] = AutoTokenizer.from_pretrained(folder)
    return _TOKENIZERS[folder]


def _transformer_tokens(embedder: Any, texts: list[str]) -> list[int]:
    tokenizer = _hf_tokenizer(str(embedder.source.folder()))
    windowed = embedder.window_stride is not None
    ids = tokenizer(texts, truncation=not windowed, max_length=None if windowed else embedder.max_length,
                    verbose=False)["input_ids"]
    return [len(row) for row in ids]


def bert_flops(layers: int, hidden: int, intermediate: int, mean_tokens: float) -> float:
    """Matrix-multiply FLOPs per real token of ``layers`` BERT blocks: Q, K, V, output and the two
    feed-forward products, plus attention scores and mixing over ``mean_tokens`` positions."""
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * mean_tokens * hidden)


def _transformer_flops(embedder: Any, mean_tokens: float) -> float | None:
    config = embedder.source.config() or {}
    try:
        num, hidden, inter = (int(config[k]) for k in ("num_hidden_layers", "hidden_size", "intermediate_size"))
    except (KeyError, TypeError, ValueError):
        return None
    depth = max(embedder.layer_spec.resolve(num))  # only the blocks up to the deepest chosen layer run
    return bert_flops(depth, hidden, inter, mean_tokens)


def _transformer_peer(embedder: Any) -> Any:
    from embedx.bench.throughput.peers import SentenceTransformersPeer

    spec = embedder.layer_spec
    if spec.is_all or tuple(spec.indices) != (-1,):
        raise NoPeer(f"layers={','.join(map(str, spec.indices or ('all',)))}: encode reads the last layer only")
    if embedder.pooling not in ("mean", "cls", "max"):
        raise NoPeer(f"pooling={embedder.pooling}: sentence-transformers pools mean, cls or max")
    if embedder.window_stride is not None or embedder.lowercase is not None or embedder.truncation_side != "right":
        raise NoPeer("windows, lowercase and left truncation have no sentence-transformers equivalent")
    return SentenceTransformersPeer(str(embedder.source.folder()), embedder.pooling, embedder.normalize,
                                    embedder.max_length, embedder.dtype,
                                    "cpu" if embedder.backend != "torch" else embedder.device, embedder.threads)


def transformers_family() -> Family:
    return Family("transformers", "word piece ([CLS] and [SEP] included)", _transformer_tokens, _transformer_flops,
                  _transformer_peer)


# -- word vectors: a plain numpy loop --------------------------------------------------------------

def _word_tokens(embedder: Any, texts: list[str]) -> list[int]:
    cap = embedder.max_length
    return [min(len(embedder.tokenize(t)), cap) if cap else len(embedder.tokenize(t)) for t in texts]


def _word_peer(embedder: Any) -> Any:
    from embedx.bench.throughput.peers import NumpyWordVectorsPeer

    if embedder.oov == "subword":
        raise NoPeer("oov=subword: a plain loop has no fastText n-grams")
    if embedder.source is None and embedder.format not in ("word2vec-bin", "word2vec-text", "glove", "fasttext-vec"):
        raise NoPeer(f"format {embedder.format}: the plain loop reads word2vec / GloVe / .vec files")
    return NumpyWordVectorsPeer(embedder.source, embedder.path, embedder.format, embedder.tokenize, embedder.pooling,
                                embedder.max_length, embedder.normalize, embedder.oov)


def word_vectors_family() -> Family:
    return Family("word vectors", "word (the embedder's tokenizer)", _word_tokens, None, _word_peer)


# -- TF Hub: hub.KerasLayer ------------------------------------------------------------------------

def _module_folder(embedder: Any) -> str:
    from embedx_tfhub import handles

    folder = handles.local_folder(embedder.handle)
    if folder is None:
        raise NoPeer(f"module {embedder.handle} is not on this machine")
    return str(folder)


def _tfhub_text_peer(embedder: Any) -> Any:
    from embedx.bench.throughput.peers import KerasLayerPeer

    return KerasLayerPeer(_module_folder(embedder), "text")


def _elmo_peer(embedder: Any) -> Any:
    from embedx.bench.throughput.peers import KerasLayerPeer

    if embedder.signature != "default" or embedder.max_length is not None:
        raise NoPeer("the peer calls the default signature on whole texts")
    if tuple(embedder.requested_outputs or embedder.default_outputs) != ("default",):
        raise NoPeer("the peer reproduces the default output only")
    return KerasLayerPeer(_module_folder(embedder), "elmo")


def _elmo_tokens(embedder: Any, texts: list[str]) -> list[int]:
    return [len(embedder.tokenize(t)[0]) for t in texts]


def _bert_tokens(embedder: Any, texts: list[str]) -> list[int]:
    if getattr(embedder, "_tokenizer", None) is None:
        return [len(t.split()) for t in texts]
    return [len(ids) + 2 for ids in embedder.encode(texts)[0]]


def _bert_peer(embedder: Any) -> Any:
    from embedx.bench.throughput.peers import KerasLayerPeer

    if embedder.layer_spec is not None and tuple(embedder.layer_spec) != (-1,):
        raise NoPeer("the peer pools the last layer (sequence_output) only")
    return KerasLayerPeer(_module_folder(embedder), "bert", embedder.pooling, embedder.max_length)


def _bert_module_flops(embedder: Any, mean_tokens: float) -> float | None:
    module = getattr(embedder, "module", None)
    if module is None or not embedder.num_layers or not embedder.hidden:
        return None
    widths = {int(v.shape[-1]) for v in getattr(module, "variables", [])
              if "intermediate" in v.name and "kernel" in v.name and len(v.shape) == 2}
    if len(widths) != 1:
        return None
    # the module computes every block whichever layers are read
    return bert_flops(embedder.num_layers, embedder.hidden, widths.pop(), mean_tokens)


def tfhub_text_family() -> Family:
    return Family("TF Hub text embedding", peer=_tfhub_text_peer)


def elmo_family() -> Family:
    return Family("ELMo", count_tokens=_elmo_tokens, peer=_elmo_peer)


def tfhub_bert_family() -> Family:
    return Family("TF Hub BERT", "word piece ([CLS] and [SEP] included)", _bert_tokens, _bert_module_flops, _bert_peer)


#: Embedder class (module.qualname) -> its family's adapters.
FAMILIES: dict[str, Callable[[], Family]] = {
    "embedx_transformers.encoder.TransformerEncoder": transformers_family,
    "embedx_gensim.word_vectors.WordVectors": word_vectors_family,
    "embedx_tfhub.text_embedding.TextEmbedding": tfhub_text_family,
    "embedx_tfhub.elmo.Elmo": elmo_family,
    "embedx_tfhub.bert.TfHubBert": tfhub_bert_family,
}
