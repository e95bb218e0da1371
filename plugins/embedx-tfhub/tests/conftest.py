"""The shared fixtures of :mod:`embedx_tfhub.testing.fixtures` (also used by embedx-swivel and embedx-elmo-train)."""

from embedx_tfhub.testing.fixtures import Stored, extract, hub, modules, registry, tf  # noqa: F401
