"""Text knobs kept from the seed notebooks: ``maxtokens`` and ``maxtokenlen``.

Tokens are whitespace-separated. As in the seeds, the first ``max_tokens`` tokens are taken before the
length rule applies, so a text may end up with fewer tokens. Long tokens are cut to ``maxtokenlen``
characters by default (``token[:maxtokenlen]``, as the seeds do); ``long_tokens="drop"`` drops them instead.
"""

from __future__ import annotations

from typing import Literal

LongTokens = Literal["drop", "truncate"]


def limit_tokens(text: str, max_tokens: int | None = None, max_token_length: int | None = None,
                 long_tokens: LongTokens = "truncate") -> str:
    """``text`` cut to its first ``max_tokens`` tokens, without tokens over ``max_token_length`` characters.

    With both knobs off the text comes back untouched (whitespace included); otherwise tokens are rejoined
    with single spaces.
    """
    if max_tokens is None and max_token_length is None:
        return text
    # Splitting at most max_tokens times keeps a long raw email from being tokenised in full.
    tokens = text.split() if max_tokens is None else text.split(None, max_tokens)[:max_tokens]
    if max_token_length is not None:
        if long_tokens == "drop":
            tokens = [token for token in tokens if len(token) <= max_token_length]
        else:
            tokens = [token[:max_token_length] for token in tokens]
    return " ".join(tokens)
