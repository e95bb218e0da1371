"""embedx-swivel: Swivel word vectors trained here, and any word vectors exported as TF Hub text-embedding modules.

``embedx swivel train`` counts co-occurrences in a corpus (:mod:`.vocab`, :mod:`.cooccurrence`),
trains Swivel on sharded blocks (:mod:`.shards`, :mod:`.train`) and exports a SavedModel that takes
sentences and returns vectors, like the published gnews-swivel modules (:mod:`.export`);
``embedx swivel export`` does the last step for any vector file, and ``embedx swivel evaluate``
checks quality (:mod:`.evaluate`). The steps in order live in :mod:`.pipeline`. The corpus reader
(:mod:`embedx_tfhub.corpus`), the folder replacement (:mod:`embedx_tfhub.folders`) and TensorFlow's
loader come from the embedx-tfhub runtime, which also runs the exported modules (``tfhub-text``).
Importing this package imports nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
