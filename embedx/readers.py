"""Cached features as the inputs other libraries expect: numpy chunks, a torch Dataset, a tf.data pipeline.

The public reader module (``from embedx.readers import iter_numpy``); the implementation lives in
:mod:`embedx.features.loaders`.
"""

from embedx.features.loaders import iter_numpy, tf_dataset, torch_dataset

__all__ = ["iter_numpy", "tf_dataset", "torch_dataset"]
