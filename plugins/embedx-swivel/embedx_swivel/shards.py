"""Cutting the co-occurrence matrix into Swivel's submatrix blocks.

Swivel trains on one dense ``s x s`` block at a time: ``s`` row words against ``s`` column words,
*every* cell of the block, observed or not (that is how it "notices what's missing"). As in the
paper, words are dealt to ``n`` shards round-robin in frequency order (word ``i`` goes to shard
``i % n`` at position ``i // n``), so each block mixes frequent and rare words and all blocks look
alike to the optimizer. All shards have the same size (the vocabulary is cut to a multiple of
``n``, dropping at most ``n - 1`` of the rarest words, as the reference ``prep.py`` does), so one
traced TensorFlow step serves every block.

The observed cells of all blocks live in two flat arrays sorted by block (local flat index
``row * s + col`` and count), with offsets per block: ``nnz * 8`` bytes, never a dense matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from embedx_swivel.errors import SwivelOptionError


@dataclass
class Shards:
    """The blocks of one symmetric co-occurrence matrix, and its marginals."""

    num_shards: int
    shard_size: int
    local_index: np.ndarray  # int32 [nnz]: row_in_shard * shard_size + col_in_shard, grouped by block
    counts: np.ndarray  # float32 [nnz]
    offsets: np.ndarray  # int64 [num_shards**2 + 1]: block b's cells are offsets[b]:offsets[b+1]
    row_sums: np.ndarray  # float64 [vocab]
    col_sums: np.ndarray  # float64 [vocab]
    total: float

    @property
    def vocab_size(self) -> int:
        return self.num_shards * self.shard_size

    @property
    def num_blocks(self) -> int:
        return self.num_shards * self.num_shards

    def words(self, shard: int) -> np.ndarray:
        """Vocabulary ids of one shard, in position order."""
        return np.arange(shard, self.vocab_size, self.num_shards, dtype=np.int32)

    def block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row word ids, column word ids, observed local indices, their counts) of one block."""
        row_shard, col_shard = divmod(block, self.num_shards)
        lo, hi = self.offsets[block], self.offsets[block + 1]
        return self.words(row_shard), self.words(col_shard), self.local_index[lo:hi], self.counts[lo:hi]


def plan(vocab_size: int, shard_size: int) -> tuple[int, int]:
    """(number of shards, words per shard): the fewest shards of at most ``shard_size`` words."""
    if shard_size < 1:
        raise SwivelOptionError(f"shard_size must be at least 1, not {shard_size}")
    num = math.ceil(vocab_size / shard_size)
    return num, vocab_size // num


def make_shards(matrix, shard_size: int) -> Shards:
    """Split a square scipy sparse matrix (vocabulary in frequency order) into equal round-robin shards."""
    num, size = plan(matrix.shape[0], shard_size)
    kept = num * size
    square = matrix.tocsr()[:kept, :kept]
    coo = square.tocoo()
    rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
    block = (rows % num) * num + (cols % num)
    order = np.argsort(block, kind="stable")
    local = ((rows // num) * size + (cols // num))[order].astype(np.int32)
    offsets = np.zeros(num * num + 1, dtype=np.int64)
    np.cumsum(np.bincount(block, minlength=num * num), out=offsets[1:])
    row_sums = np.asarray(square.sum(axis=1)).ravel()
    col_sums = np.asarray(square.sum(axis=0)).ravel()
    return Shards(num, size, local, coo.data[order].astype(np.float32), offsets, row_sums, col_sums,
                  float(row_sums.sum()))
