"""Embedders that ship with the core. They register through the same hook as any plugin."""
