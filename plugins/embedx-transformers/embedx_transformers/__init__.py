"""embedx-transformers: document and token features from BERT-family encoders (Hugging Face transformers)."""

from __future__ import annotations

from embedx_transformers.encoder import TransformerEncoder

__version__ = "0.1.0"
__all__ = ["TransformerEncoder", "__version__"]
