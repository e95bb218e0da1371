"""File helpers every part of embedx and its plugins shares: atomic writes, content digests, vector files."""
