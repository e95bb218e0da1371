"""Moved to :mod:`embedx.plugin_api.testing`; this name stays for plugins written against embedx 0.1."""

from embedx.plugin_api.testing import *  # noqa: F401,F403
from embedx.plugin_api.testing import Stored, installed_registry  # noqa: F401
