"""The TF Hub runtime's shared fixtures (:mod:`embedx_tfhub.testing.fixtures`): registry, tf, hub, extract."""

from embedx_tfhub.testing.fixtures import extract, hub, registry, tf  # noqa: F401
