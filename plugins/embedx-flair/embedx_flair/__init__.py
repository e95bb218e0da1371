"""embedx-flair: Flair's embeddings (character LMs, word vectors, transformers, stacks) as embedx embedders.

Importing this package loads neither flair nor torch; they load when an embedder does.
"""

from __future__ import annotations

from embedx_flair.char_dictionary import build_char_dictionary

__version__ = "0.1.0"
__all__ = ["__version__", "build_char_dictionary"]
