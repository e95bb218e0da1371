"""embedx-elmo-train: train a biLM with ELMo's architecture and export it as an ELMo module.

``embedx elmo train`` (:mod:`.train`: vocabulary, held-out text and batches from :mod:`.sequences`,
the model in :mod:`.model`) and ``embedx elmo export`` (:mod:`.export`), on top of the embedx-tfhub
runtime: its TensorFlow loader, its streamed training corpus (:mod:`embedx_tfhub.corpus`) and its
folder replacement (:mod:`embedx_tfhub.folders`). The ``elmo`` / ``elmo-trained`` embedders that
read the exported module live in embedx-tfhub. Importing this package imports nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
