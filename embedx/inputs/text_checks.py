"""Checks on decoded text that must happen at read time, where the line number is still known.

Anything that would only fail when the input table is written (a string HDF5 cannot store as
UTF-8, two columns that land on one dataset name) is caught here, so a bad row is reported
with its line instead of blocking the file at commit.
"""

from __future__ import annotations

import re
import unicodedata

from embedx.contract.errors import InputError
from embedx.inputs.decoding import EncodingErrors
from embedx.store.layout import safe_name

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_string(value: str, where: str, errors: EncodingErrors) -> str:
    """``value`` as storable UTF-8: lone surrogates (JSON ``"\\ud800"``) and NUL are an error
    naming ``where`` unless ``errors`` is ``replace`` (U+FFFD) or ``ignore`` (dropped)."""
    bad = _SURROGATE.search(value)
    nul = value.find("\x00")
    if bad is None and nul < 0:
        return value
    if errors == "strict":
        what = (f"a lone surrogate U+{ord(bad.group()):04X} at character {bad.start()}, which is not valid Unicode"
                if bad is not None else f"a NUL character at character {nul}")
        raise InputError(f"{where}: {what}; fix the text, or pass --encoding-errors replace (U+FFFD) or "
                         "ignore (drop it)")
    replacement = "\ufffd" if errors == "replace" else ""
    return _SURROGATE.sub(replacement, value).replace("\x00", replacement)


def is_blank(text: str) -> bool:
    """True for text with nothing to embed: only whitespace, separators (Zs, Zl, Zp) and format
    characters (Cf: zero-width space U+200B, BOM U+FEFF, word joiner U+2060, bidi marks)."""
    return all(c.isspace() or unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp") for c in text)


def check_column_names(names: list[str], source: str) -> None:
    """Refuse two columns that would be stored under one name (``a b`` and ``a_b``), or a repeated name."""
    seen: dict[str, str] = {}
    for name in names:
        stored = safe_name(name)
        if stored in seen:
            first = seen[stored]
            why = "appears twice" if first == name else f"and {first!r} are both stored as {stored!r}"
            raise InputError(f"{source}: column {name!r} {why}; rename one of them")
        seen[stored] = name
