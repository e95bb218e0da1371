"""Cached features read back for other libraries (numpy, torch, tf.data) and exported to files."""
