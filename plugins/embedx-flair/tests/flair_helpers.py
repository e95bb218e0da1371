"""Test data and builders shared by the flair tests (a uniquely named module, so imports never
resolve to another package's conftest)."""

from __future__ import annotations

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A gripping, funny film; it's 3.14 times better than the book!",
    "Dull and far too long: nobody in the audience laughed.",
    "Sydney's bushfires forced hundreds of people from their homes.",
]


def save_char_lm(path, forward: bool, hidden: int = 32, seed: int = 0, texts=CORPUS) -> str:
    """A small untrained flair character LM with a locally built dictionary, saved as flair saves LMs."""
    import torch
    from flair.models import LanguageModel

    from embedx_flair import build_char_dictionary

    torch.manual_seed(seed)
    lm = LanguageModel(build_char_dictionary(texts), is_forward_lm=forward, hidden_size=hidden, nlayers=1,
                       embedding_size=16)
    lm.save(str(path))
    return str(path)
