"""Masked pooling of token vectors into one vector per sequence, and the rule for windowed texts.

Every method looks only at real positions (attention mask 1): [CLS], the content pieces and
[SEP], never padding, as sentence-transformers and bert-as-service do. ``last`` is the last
real position, which for BERT-family models is the closing [SEP]. ``mean_max`` concatenates
the mean and the max along the last axis. Inputs are ``[batch, tokens, ...]`` float tensors
(a layer axis may sit before the feature axis); pooling removes the token axis.
"""

from __future__ import annotations

import torch


def pool(x: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """Pool ``x`` ``[B, T, ...]`` over its real positions ``mask`` ``[B, T]`` (bool)."""
    if method == "cls":
        return x[:, 0]
    if method == "last":
        last = mask.sum(1) - 1
        return x[torch.arange(x.shape[0], device=x.device), last]
    shape = mask.shape + (1,) * (x.dim() - 2)
    m = mask.view(shape)
    if method == "mean":
        return _mean(x, m)
    if method == "max":
        return x.masked_fill(~m, float("-inf")).amax(1)
    if method == "mean_max":
        return torch.cat([_mean(x, m), x.masked_fill(~m, float("-inf")).amax(1)], dim=-1)
    raise ValueError(f"unknown pooling {method!r}")


def _mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Masked mean as one batched matrix product (``[B, 1, T] @ [B, T, rest]``): a single read of ``x``,
    no masked copy of it, which on the CPU made pooling cost as much as tokenising."""
    weights = m.reshape(m.shape[0], 1, m.shape[1]).to(x.dtype)
    total = torch.bmm(weights, x.reshape(x.shape[0], x.shape[1], -1)).reshape((x.shape[0],) + x.shape[2:])
    return total / m.sum(1).clamp(min=1).to(x.dtype)


def pool_windows(stitched: torch.Tensor, firsts: torch.Tensor, lasts: torch.Tensor, weights: torch.Tensor,
                 method: str) -> torch.Tensor:
    """The document vector of a windowed text.

    ``stitched`` ``[T, ...]`` is the text as one sequence: the first window's leading special
    tokens, each piece from the window where it is most central, the last window's closing
    special tokens. ``mean``, ``max`` and ``mean_max`` pool it like any sequence. ``cls`` and
    ``last`` average each window's [CLS] (``firsts``) or final token (``lasts``), weighted by the
    number of pieces each window contributed, so every part of the text counts.
    """
    if method in ("cls", "last"):
        rows = firsts if method == "cls" else lasts
        w = (weights / weights.sum()).view((-1,) + (1,) * (rows.dim() - 1)).to(rows.dtype)
        return (rows * w).sum(0)
    mask = torch.ones((1, stitched.shape[0]), dtype=torch.bool, device=stitched.device)
    return pool(stitched.unsqueeze(0), mask, method)[0]
