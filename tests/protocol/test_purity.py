"""The protocol layer stays free of Django and Channels (it is what a fuzzer hammers)."""

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import mcp_server.protocol

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_CHECK = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
forbidden = sorted(
    mod for mod in sys.modules
    if mod.split(".")[0] in {"django", "channels", "daphne", "rest_framework", "accounts"}
)
print(json.dumps(forbidden))
"""


def _protocol_modules() -> list[str]:
    prefix = mcp_server.protocol.__name__ + "."
    return [info.name for info in pkgutil.iter_modules(mcp_server.protocol.__path__, prefix)]


def test_protocol_package_has_the_expected_modules() -> None:
    names = set(_protocol_modules())
    for module in ("errors", "messages", "versions", "log_levels", "pagination", "lifecycle"):
        assert f"mcp_server.protocol.{module}" in names


def test_importing_the_protocol_imports_no_django() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(
        [sys.executable, "-c", _CHECK, *_protocol_modules()],
        cwd=PROJECT_ROOT,
        env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]", completed.stdout
