"""embedx-tfhub: TF Hub modules (text embeddings, ELMo, BERT encoders) as embedx embedders.

Importing this package is cheap: TensorFlow is imported only when an embedder loads, a Keras
builder runs, or a ``embedx tfhub`` command that needs it is called (see :mod:`embedx_tfhub._tf`).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
