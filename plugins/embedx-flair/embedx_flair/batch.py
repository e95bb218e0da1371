"""Run flair on one batch and hand the vectors over as numpy, leaving nothing on the Sentences.

flair keeps every embedding on its Sentence and Token objects (``embeddings_storage_mode``);
a long extraction that held on to them would grow without bound, and a token vector of a
character LM is a view that pins the whole batch's hidden-state tensor. Here every vector is
copied into a numpy array, then each Sentence's embeddings are cleared before the batch
returns, so memory stays flat however many batches run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embedx.plugin_api import Embeddings, Ragged
from embedx_flair.sentences import Prepared


def run_batch(prepared: Prepared, embed: Callable[[list[Any]], Any], dim: int, requested: tuple[str, ...],
              doc_name: str | None, token_names: list[str] | None = None) -> Embeddings:
    """Embed the batch's Sentences with ``embed``; return the ``doc`` and/or ``tokens`` outputs requested.

    ``doc_name`` is the name flair stores the document vector under; ``token_names`` the names of
    the token embeddings, concatenated in flair's order. Texts without a Sentence get a zero
    document vector and no token rows.
    """
    import torch

    want_doc, want_tokens = "doc" in requested, "tokens" in requested
    live = prepared.live
    docs = np.zeros((len(prepared.sentences), dim), dtype=np.float32)
    arrays: list[np.ndarray] = []
    tokens: list[list[str]] = []
    try:
        with torch.no_grad():
            if live:
                embed(live)
        for row, sentence in enumerate(prepared.sentences):
            if sentence is None:
                arrays.append(np.zeros((0, dim), dtype=np.float32))
                tokens.append([])
                continue
            if want_doc:
                docs[row] = _numpy(sentence.get_embedding([doc_name]))
            if want_tokens:
                arrays.append(_numpy(torch.stack([token.get_embedding(token_names) for token in sentence])))
                tokens.append([token.text for token in sentence])
    finally:
        for sentence in live:
            sentence.clear_embeddings()
    outputs: dict[str, Any] = {}
    if want_doc:
        outputs["doc"] = docs
    if want_tokens:
        outputs["tokens"] = Ragged(arrays, tokens)
    return Embeddings(outputs, prepared.truncated)


def _numpy(tensor: Any) -> np.ndarray:
    """A float32 numpy copy that shares no memory with flair's tensors."""
    return np.array(tensor.detach().float().cpu().numpy(), dtype=np.float32, copy=True)
