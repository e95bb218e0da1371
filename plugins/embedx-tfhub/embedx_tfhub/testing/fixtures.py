"""Shared pytest fixtures: the test modules (built once per session), a registry from the installed entry
points, TensorFlow and TF Hub.

Used by the tests of embedx-tfhub, embedx-swivel and embedx-elmo-train; each ``tests/conftest.py`` imports
the fixtures it needs from here (and defines ``extract`` around :func:`embedx.plugin_api.testing.extractor`,
which drives embedx's user API: plugin code other than tests reaches embedx only through its plugin API).
Importing this module imports pytest (tests only), not TensorFlow.
"""

from __future__ import annotations

import pytest

from embedx.plugin_api.testing import installed_registry


@pytest.fixture(scope="session")
def registry():
    """embedx's registry with installed plugins loaded, whatever EMBEDX_LOAD_PLUGINS says in this process."""
    return installed_registry({"elmo", "tfhub-bert", "tfhub-text"}, "pip install -e plugins/embedx-tfhub first")


@pytest.fixture(scope="session")
def modules(tmp_path_factory):
    """The three small modules with published interfaces: {"elmo": folder, "text": folder, "bert": folder}."""
    from embedx_tfhub.testing import build_test_modules

    return build_test_modules(tmp_path_factory.mktemp("tfhub-modules"))


@pytest.fixture(scope="session")
def tf():
    from embedx_tfhub import _tf

    return _tf.tensorflow()


@pytest.fixture(scope="session")
def hub():
    from embedx_tfhub import _tf

    return _tf.hub()
