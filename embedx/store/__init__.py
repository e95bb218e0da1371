"""The HDF5 feature store: layout, durable staging, atomic commits, and reading back."""
