"""The console in real headless Chromium (Debian's package, driven by Playwright).

Chromium must be installed (`make test` installs it when it can); without it these tests
fail and say how to install it: they never skip silently.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.cli import fixtures
from tests.e2e.conftest import Accounts
from tests.e2e.support import (
    PROJECT_DIR,
    Deployment,
    ServerProcess,
    free_port,
    start_server_on_port,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "Chromium is not installed, and the console tests drive Debian's chromium "
    f"({CHROMIUM}). Install it with `make browser` or "
    "`apt-get update && apt-get install -y chromium`."
)
ARTIFACTS = PROJECT_DIR / "test-artifacts"
DESKTOP = {"width": 1366, "height": 900}


def pytest_configure(config: pytest.Config) -> None:
    """Register the e2e fixtures (deployment, accounts, servers), shared with tests/cli."""
    fixtures.register(config)


def console_server_env(port: int) -> dict[str, str]:
    """A server whose own origin may use the session cookie on /mcp: the default (an empty
    MCP_ALLOWED_ORIGINS allows the served origin, whatever the port)."""
    return {}


@pytest.fixture(scope="session")
def console_server(deployment: Deployment, accounts: Accounts) -> Iterator[ServerProcess]:
    """A server on a port chosen first, so MCP_ALLOWED_ORIGINS can name its own origin."""
    port = free_port()
    server = start_server_on_port(deployment, port, console_server_env(port))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable (the test fails with the install command when it is missing)."""
    path = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if path is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator["Browser"]:
    """Headless Chromium, one per test module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `pip install -e '.[dev]'`", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def artifacts() -> Path:
    """The git-ignored folder for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@contextmanager
def open_page(browser: "Browser", base_url: str, **options: Any) -> Iterator["Page"]:
    """A page in a fresh context (no cookies); fails if the page throws a JavaScript error."""
    context = browser.new_context(base_url=base_url, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()


@pytest.fixture
def page(browser: "Browser", console_server: ServerProcess) -> Iterator["Page"]:
    """A desktop-sized page on the console server."""
    with open_page(browser, console_server.http_url, viewport=DESKTOP) as opened:
        yield opened
