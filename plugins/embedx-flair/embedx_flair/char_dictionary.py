"""Character dictionaries for flair language models, built from text instead of downloaded.

flair's ``Dictionary.load("chars")`` fetches its published character list from a server; a
machine without that server needs the dictionary made from the corpus the model will see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

#: Characters every flair character LM needs: FlairEmbeddings starts each text with the
#: document delimiter "\n", separates tokens and pads batches with " ".
REQUIRED = ("\n", " ")


def build_char_dictionary(texts: Iterable[str], min_count: int = 1, max_chars: int | None = None) -> Any:
    """A ``flair.data.Dictionary`` of the characters of ``texts``, most frequent first.

    Index 0 is ``<unk>``: characters not in the dictionary (rarer than ``min_count``, beyond
    ``max_chars``, or never seen) map to it, as with flair's published dictionaries. ``"\\n"``
    and ``" "`` are always included.
    """
    from embedx_flair.flair_import import import_flair

    import_flair()
    from flair.data import Dictionary

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    dictionary = Dictionary(add_unk=True)
    for char in REQUIRED:
        dictionary.add_item(char)
    ranked = [c for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]
    for char in ranked:
        if max_chars is not None and len(dictionary) >= max_chars:
            break
        dictionary.add_item(char)
    return dictionary
