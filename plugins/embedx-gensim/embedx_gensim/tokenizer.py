"""A small regex tokenizer that splits text the way the common pretrained vocabularies expect.

GloVe, word2vec and fastText vocabularies were built from Penn-Treebank-style tokens: words,
numbers, hyphenated compounds, clitics split off (``don't`` -> ``do n't``, ``it's`` -> ``it 's``)
and punctuation as tokens of its own. Matching that keeps more tokens in vocabulary than
``\\w+`` would. It is a regex, not a language model: fast, deterministic, documented.
"""

from __future__ import annotations

import re

# Order matters: the first alternative that matches at a position wins.
_TOKEN = re.compile(
    r"""
      \w+(?=n't\b)                  # the stem before a negation clitic: "do" in "don't"
    | n't\b                         # the negation clitic itself
    | '(?:s|re|ve|d|ll|m)\b         # other clitics: 's 're 've 'd 'll 'm
    | \d+(?:[.,]\d+)+               # numbers with separators: 3.14, 1,000
    | \w+(?:-\w+)*                  # words, including hyphenated compounds
    | \.\.\.                        # an ellipsis is one token in these vocabularies
    | [^\w\s]                       # any other non-space character is a punctuation token
    """,
    re.VERBOSE | re.IGNORECASE | re.UNICODE,
)
_WORDISH = re.compile(r"\w", re.UNICODE)


def is_punctuation(token: str) -> bool:
    """A token with no letter, digit or underscore in it."""
    return _WORDISH.search(token) is None


class Tokenizer:
    """Turns a text into tokens; ``lowercase`` first folds case, ``strip_punctuation`` drops punctuation tokens."""

    def __init__(self, lowercase: bool = False, strip_punctuation: bool = True):
        self.lowercase = lowercase
        self.strip_punctuation = strip_punctuation

    def __call__(self, text: str) -> list[str]:
        text = text.replace("\u2019", "'")  # typographic apostrophe: vocabularies use the ASCII one
        if self.lowercase:
            text = text.lower()
        tokens = _TOKEN.findall(text)
        if self.strip_punctuation:
            tokens = [t for t in tokens if not is_punctuation(t)]
        return tokens
