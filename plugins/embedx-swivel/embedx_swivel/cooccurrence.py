"""The second counting pass: a symmetric, distance-weighted co-occurrence matrix, in bounded memory.

Definition (Swivel's and GloVe's): after dropping out-of-vocabulary tokens, every two tokens of
the same document at distance ``1 <= d <= window`` add ``1/d`` to ``X[a, b]`` *and* to ``X[b, a]``.
A word next to itself (``"very very"``) adds ``2/d`` to its diagonal cell, once from each side.

How it stays fast and small: tokens are mapped to ids a chunk of about ``chunk_tokens`` at a
time; for each offset ``d`` the (left, right) id pairs of the chunk are two numpy slices, masked
where they cross a document boundary. Each chunk's pairs are summed by scipy's COO -> CSR
conversion (which adds duplicates in linear time), so only *forward* pairs are stored and the
symmetric matrix is ``C + C.T`` at the end. The last ``window`` tokens of a chunk are carried into
the next, so a document (even a one-line corpus like text8) may span chunks without losing pairs.
Chunk matrices are folded into the running total every few chunks, in one linear-time merge.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from embedx_swivel.errors import CorpusError, SwivelOptionError
from embedx_swivel.tokenizer import tokenize_all
from embedx_swivel.vocab import Vocabulary
from embedx_tfhub.corpus import Corpus

#: Chunk matrices summed into the total at once; bounds memory to about this many chunks' pairs.
MERGE_EVERY = 8


@dataclass
class Cooccurrences:
    """The symmetric matrix (scipy CSR, float64) and what went into it."""

    matrix: object
    window: int
    tokens: int  # in-vocabulary tokens windowed
    pairs: int  # forward (left, right) pairs counted, before summing duplicates

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)


def _id_chunks(corpus: Corpus, vocab: Vocabulary, chunk_tokens: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, document numbers) of about ``chunk_tokens`` in-vocabulary tokens at a time."""
    get = vocab.index.get
    pending: list[str] = []
    lengths: list[int] = []
    first_doc = 0

    def flush() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        ids = np.fromiter(map(get, pending, itertools.repeat(-1)), dtype=np.int32, count=len(pending))
        docs = np.repeat(np.arange(first_doc, first_doc + len(lengths), dtype=np.int64), lengths)
        keep = ids >= 0
        ids, docs = ids[keep], docs[keep]
        for start in range(0, len(ids), chunk_tokens):  # one huge line still gives bounded pair arrays
            yield ids[start:start + chunk_tokens], docs[start:start + chunk_tokens]

    for tokens in tokenize_all(corpus.lines(), vocab.lowercase):
        pending.extend(tokens)
        lengths.append(len(tokens))
        if len(pending) >= chunk_tokens:
            yield from flush()
            first_doc += len(lengths)
            pending, lengths = [], []
    if pending:
        yield from flush()


def forward_pairs(ids: np.ndarray, docs: np.ndarray, start: int, window: int) -> tuple[list, list, list]:
    """Pairs (ids[j-d], ids[j]) for j >= start, 1 <= d <= window, inside one document, with weights 1/d."""
    rows, cols, weights = [], [], []
    n = len(ids)
    for d in range(1, window + 1):
        lo = max(start, d)
        if lo >= n:
            break
        same = docs[lo - d:n - d] == docs[lo:n]
        left, right = ids[lo - d:n - d][same], ids[lo:n][same]
        rows.append(left)
        cols.append(right)
        weights.append(np.full(len(left), 1.0 / d))
    return rows, cols, weights


def count_cooccurrences(corpus: Corpus, vocab: Vocabulary, window: int = 10, chunk_tokens: int = 250_000,
                        on_progress: Callable[[int], None] | None = None) -> Cooccurrences:
    """Stream the corpus once more and return the symmetric weighted co-occurrence matrix."""
    import scipy.sparse as sp

    if window < 1:
        raise SwivelOptionError(f"window must be at least 1, not {window}")
    if chunk_tokens < 1:
        raise SwivelOptionError(f"chunk_tokens must be at least 1, not {chunk_tokens}")
    size = len(vocab)
    shape = (size, size)
    total = sp.csr_matrix(shape, dtype=np.float64)
    pending: list = []
    tail_ids = np.zeros(0, np.int32)
    tail_docs = np.zeros(0, np.int64)
    tokens = pairs = 0

    def merge(total, parts):
        coo = [p.tocoo() for p in [total, *parts]]
        return sp.coo_matrix((np.concatenate([c.data for c in coo]),
                              (np.concatenate([c.row for c in coo]), np.concatenate([c.col for c in coo]))),
                             shape=shape).tocsr()

    for ids, docs in _id_chunks(corpus, vocab, chunk_tokens):
        tokens += len(ids)
        ids_ext, docs_ext = np.concatenate([tail_ids, ids]), np.concatenate([tail_docs, docs])
        rows, cols, weights = forward_pairs(ids_ext, docs_ext, len(tail_ids), window)
        if rows:
            data = np.concatenate(weights)
            pairs += len(data)
            pending.append(sp.coo_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=shape).tocsr())
        tail_ids, tail_docs = ids_ext[-window:], docs_ext[-window:]
        if len(pending) >= MERGE_EVERY:
            total, pending = merge(total, pending), []
        if on_progress is not None:
            on_progress(tokens)
    if pending:
        total = merge(total, pending)
    if total.nnz == 0:
        raise CorpusError(f"no two vocabulary words occur within window={window} of each other in one document "
                          f"({tokens:,} vocabulary tokens); give a larger corpus")
    symmetric = (total + total.T).tocsr()
    symmetric.sum_duplicates()
    symmetric.sort_indices()
    return Cooccurrences(symmetric, window, tokens, pairs)


def brute_force(documents: list[list[str]], vocab: Vocabulary, window: int) -> np.ndarray:
    """The same matrix by the definition, as a dense array: for tests on tiny corpora."""
    size = len(vocab)
    dense = np.zeros((size, size))
    for tokens in documents:
        ids = [vocab.index[t] for t in tokens if t in vocab.index]
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if 1 <= abs(i - j) <= window:
                    dense[a, b] += 1.0 / abs(i - j)
    return dense
