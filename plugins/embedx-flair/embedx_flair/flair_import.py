"""The one way into flair: with ``USE_TF=0``, so TensorFlow stays out of the process.

flair imports transformers, and transformers imports TensorFlow whenever it is installed
(seconds and hundreds of MB for nothing: flair runs on torch) unless ``USE_TF=0`` is set before
its first import. A user's explicit ``USE_TF`` wins.
"""

from __future__ import annotations

import os
from types import ModuleType


def import_flair() -> ModuleType:
    """``import flair`` with TensorFlow switched off for transformers (if nothing imported it yet)."""
    os.environ.setdefault("USE_TF", "0")
    import flair

    return flair
