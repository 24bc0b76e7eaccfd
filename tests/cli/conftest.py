"""The CLI runs against real servers of the e2e deployment (its fixtures, reused)."""

from pathlib import Path

import pytest

from tests.cli import fixtures
from tests.cli.support import cli_env
from tests.e2e.conftest import Accounts
from tests.e2e.support import ServerProcess


def pytest_configure(config: pytest.Config) -> None:
    """Register the e2e fixtures (deployment, accounts, servers), shared with tests/console."""
    fixtures.register(config)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME for the CLI, so no real ~/.config/mcp-ws/config.toml is read."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def alice_env(home: Path, server: ServerProcess, accounts: Accounts) -> dict[str, str]:
    """The CLI's environment: the shared server's URL and alice's token in MCP_TOKEN."""
    return cli_env(home, MCP_URL=server.ws_url(), MCP_TOKEN=accounts.alice)
