"""The one tokenizer shared by co-occurrence counting and the exported TF Hub module.

It follows the published TF Hub text-embedding modules (gnews-swivel, nnlm): delete
punctuation, split on whitespace, no lowercasing unless asked. The sets are spelled out here
once, from Python's Unicode tables, and the exported module compiles the *same* sets into its
RE2 patterns, so a sentence tokenizes identically at training time (Python) and at serving time
(TensorFlow):

- punctuation: every code point of Unicode category ``P*`` (what RE2's ``\\pP`` matches) is deleted,
  so ``"don't"`` becomes ``"dont"`` and ``"u.s."`` becomes ``"us"``;
- whitespace: every code point for which ``str.isspace()`` holds separates tokens (the published
  modules split on ``" "`` only; tabs and line breaks cannot be in a vocabulary file, so treating
  them as spaces changes nothing for a vocabulary word). Empty tokens are dropped;
- lowercasing (optional) is ``str.lower()`` in Python and ``tf.strings.lower(encoding="utf-8")`` in the
  module; they differ only for the few characters whose lowercase is longer than one code point.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Iterable, Iterator


@functools.cache
def punctuation_codepoints() -> tuple[int, ...]:
    """Code points deleted before splitting: Unicode category P (Pc, Pd, Pe, Pf, Pi, Po, Ps)."""
    return tuple(cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] == "P")


@functools.cache
def whitespace_codepoints() -> tuple[int, ...]:
    """Code points that separate tokens: those Python's ``str.split()`` splits on."""
    return tuple(cp for cp in range(0x3100) if chr(cp).isspace())  # no whitespace above U+3000


@functools.cache
def _table() -> dict[int, str | None]:
    table: dict[int, str | None] = dict.fromkeys(punctuation_codepoints())
    table.update(dict.fromkeys(whitespace_codepoints(), " "))
    return table


def normalize(text: str, lowercase: bool = False) -> str:
    """Lowercase (optionally), delete punctuation, turn every whitespace character into a space."""
    if lowercase:
        text = text.lower()
    return text.translate(_table())


def tokenize(text: str, lowercase: bool = False) -> list[str]:
    """The tokens of one text: ``"Don't stop, U.S.!"`` -> ``["Dont", "stop", "US"]``."""
    return normalize(text, lowercase).split()


def tokenize_all(texts: Iterable[str], lowercase: bool = False) -> Iterator[list[str]]:
    """Tokens of each text, lazily."""
    table = _table()
    for text in texts:
        yield (text.lower() if lowercase else text).translate(table).split()


def regex_class(codepoints: Iterable[int]) -> str:
    """An RE2 character class matching exactly ``codepoints``, as compact ranges: ``[\\x{21}-\\x{23}...]``."""
    ranges: list[tuple[int, int]] = []
    for cp in sorted(set(codepoints)):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = [f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


def punctuation_pattern() -> str:
    """RE2 pattern the module deletes (the same set as :func:`normalize`)."""
    return regex_class(punctuation_codepoints())


def whitespace_pattern() -> str:
    """RE2 pattern the module turns into a space (the same set as :func:`normalize`)."""
    return regex_class(whitespace_codepoints())


def describe(lowercase: bool) -> dict:
    """The tokenizer's settings, recorded in training reports and module metadata."""
    return {"punctuation": "deleted (Unicode category P)", "split": "whitespace (str.isspace), empty tokens dropped",
            "lowercase": bool(lowercase), "unicode": unicodedata.unidata_version}
