"""A tiny random BERT encoder with the TF Hub BERT encoder interface, for tests and benchmarks.

Same saved interface as a converted checkpoint (:mod:`embedx_tfhub.bert_model`): inputs
``input_word_ids``/``input_mask``/``input_type_ids``, outputs ``pooled_output``,
``sequence_output``, ``encoder_outputs``, ``default``, plus ``vocab_file`` and ``do_lower_case``.
The vocabulary holds BERT's special tokens, a few hundred English words, and every lowercase
letter and digit with and without ``##``, so WordPiece can spell any ASCII word.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from embedx_tfhub.bert_model import BertConfig, random_weights, save_encoder
from embedx_tfhub.testing.text_module import WORDS

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocab() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits)
    punct = list(string.punctuation)
    return SPECIALS + sorted(set(WORDS)) + chars + [f"##{c}" for c in chars] + punct


def build_bert_module(out_dir: str | Path, hidden: int = 32, layers: int = 3, heads: int = 4,
                      do_lower_case: bool = True, seed: int = 0) -> str:
    """Save a random BERT encoder (``layers`` blocks of width ``hidden``) to ``out_dir``; return the folder."""
    vocab = tiny_vocab()
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=128)
    with tempfile.TemporaryDirectory() as tmp:  # the module copies vocab.txt into its assets/
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        save_encoder(config, random_weights(config, seed), str(vocab_file), do_lower_case, str(out_dir))
    return str(out_dir)
