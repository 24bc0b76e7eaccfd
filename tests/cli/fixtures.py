"""The e2e deployment fixtures, registered once as a plugin for tests/cli, tests/console and
tests/http.

Imported into each directory's conftest, every directory would get its own deployment: its
own migrated database, accounts and servers (about 15 s of `manage.py` commands each). As
one plugin they are shared by both directories when they run in one session.
"""

import sys

import pytest

from tests.e2e.conftest import (  # noqa: F401 - fixtures
    accounts,
    deployment,
    server,
    server_factory,
)

PLUGIN_NAME = "mcp-client-tests-deployment"


def register(config: pytest.Config) -> None:
    """Register this module's fixtures for the whole session (once)."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(sys.modules[__name__], PLUGIN_NAME)
