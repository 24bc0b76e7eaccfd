"""Tools from installed apps: each app's `mcp_tools` is imported at start-up; a module that
fails to import, or a name taken twice, stops `manage.py check` and `serve` naming both."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import AppConfig, apps
from django.core.exceptions import ImproperlyConfigured

from mcp_server.tools.discovery import discover_tools
from mcp_server.tools.registry import registry
from tests.e2e.support import COMMAND_TIMEOUT, PROJECT_DIR, base_child_env

APPS = "tests.tools.tool_apps"


@pytest.fixture(autouse=True)
def _tool_modules_imported_afresh() -> Iterator[None]:
    """Each test imports the test apps' tool modules anew (the registry is reset after each)."""
    yield
    for module in [m for m in sys.modules if m.startswith(f"{APPS}.")]:
        del sys.modules[module]


def _app(name: str) -> AppConfig:
    return AppConfig.create(f"{APPS}.{name}")


def test_the_example_app_is_installed_and_its_tools_registered() -> None:
    assert apps.is_installed("example_tools")
    for name in ("text_stats", "checksum_files"):
        found = registry.get(name)
        assert found is not None
        assert found.module == "example_tools.mcp_tools"


def test_an_apps_tool_module_is_imported_and_its_tools_registered() -> None:
    imported = discover_tools([_app("extra"), apps.get_app_config("accounts")])
    assert imported == [f"{APPS}.extra.mcp_tools"]
    shout = registry.get("shout")
    assert shout is not None
    assert shout.module == f"{APPS}.extra.mcp_tools"


def test_a_tool_named_like_a_builtin_names_the_app_the_tool_and_both_modules() -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        discover_tools([_app("clashing")])
    message = str(raised.value)
    assert message.startswith(f"app 'clashing' ({APPS}.clashing.mcp_tools): tool 'echo'")
    assert "already registered by mcp_server.tools.builtin.echo" in message


def test_two_apps_with_one_tool_name() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"app 'shout_again' .*tool 'shout'.*extra"):
        discover_tools([_app("extra"), _app("shout_again")])


def test_a_module_that_fails_to_import_names_the_app_and_the_error() -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        discover_tools([_app("broken")])
    assert str(raised.value) == (
        f"app 'broken': its tool module {APPS}.broken.mcp_tools failed to import: "
        "ModuleNotFoundError: No module named 'mcp_server.tools.missing_helpers'"
    )


def _manage(tmp_path: Path, tool_apps: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**base_child_env(tmp_path, None), "MCP_TOOL_APPS": tool_apps}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def test_manage_py_check_passes_with_the_example_app(tmp_path: Path) -> None:
    done = _manage(tmp_path, "example_tools", "check")
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize(
    ("tool_apps", "expected"),
    [
        (f"{APPS}.clashing", "app 'clashing' (tests.tools.tool_apps.clashing.mcp_tools): tool "),
        (f"example_tools,{APPS}.broken", "app 'broken': its tool module "),
    ],
)
@pytest.mark.parametrize("command", [("check",), ("serve", "--port", "0")])
def test_check_and_serve_refuse_to_start(
    tmp_path: Path, tool_apps: str, expected: str, command: tuple[str, ...]
) -> None:
    done = _manage(tmp_path, tool_apps, *command)
    assert done.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {expected}" in done.stderr
