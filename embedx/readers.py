"""Cached features as the inputs other libraries expect: numpy chunks, a torch Dataset, a tf.data pipeline.

Token outputs come as padded batches with a mask, or ragged (``iter_token_batches``,
``torch_token_dataset``, ``tf_token_dataset``).

The public reader module (``from embedx.readers import iter_numpy``); the implementation lives in
:mod:`embedx.features.loaders`.
"""

from embedx.features.loaders import Chunks, iter_numpy, tf_dataset, torch_dataset
from embedx.features.tokens import TokenBatch, TokenBatches, iter_token_batches, tf_token_dataset, torch_token_dataset

__all__ = ["Chunks", "TokenBatch", "TokenBatches", "iter_numpy", "iter_token_batches", "tf_dataset",
           "tf_token_dataset", "torch_dataset", "torch_token_dataset"]
