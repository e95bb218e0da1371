"""A NaN in a stored row means a damaged segment, not a missing one: the reader says which it is."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import embedx
from embedx.contract.errors import StoreError


def test_a_stored_nan_is_reported_as_damage_not_as_a_missing_segment(registry, store_path):
    embedx.extract(["a b", "c d e"], "word-stats", store_path)
    with h5py.File(store_path, "r") as f:
        name = next(iter(f["sets"]))
        source = f[f"sets/{name}/doc/values"].virtual_sources()[0]
    holder = store_path.parent / source.file_name
    with h5py.File(holder, "r") as seg:
        values = seg[source.dset_name]
        offset = values.id.get_offset() if values.chunks is None else values.id.get_chunk_info(0).byte_offset
        assert values.compression is None
    data = bytearray(holder.read_bytes())
    data[offset:offset + 4] = np.array([np.nan], dtype="f4").tobytes()
    holder.write_bytes(bytes(data))
    with embedx.open_store(store_path) as store:
        with pytest.raises(StoreError, match=r"hold NaN, which embedx never stores, so a segment file it maps is "
                                             r"damaged; run `embedx check") as error:
            store.feature_set("word-stats").vectors(["a b", "c d e"])
        assert "gone" not in str(error.value)
