"""A process that sets Django up imports only what every process needs (issue 11).

`django.setup()` is the start-up of every process the service runs (the history writer, each
fan-out pool process, every `manage.py` command before its own imports): the REST API's
framework, Twisted, Pillow and, without `REDIS_URL`, redis load where they are used instead.
"""

import json
import subprocess
import sys
from pathlib import Path

from mcp_server.processes import scrubbed_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Each is imported by the code that uses it, never by setting Django up.
NOT_AT_SETUP = (
    "twisted",  # daphne's server: `runserver` only (config/daphne_app.py)
    "daphne.server",
    "rest_framework.serializers",  # the REST API and the MCP resources' run serializers
    "drf_spectacular.views",
    "PIL",  # thumbnails (mcp_server/tools/builtin/images.py)
    "redis",  # the channel layer and cache on Redis, only with REDIS_URL
    "mcp_server.process_runtime",  # built by serve and runoperations
)

_SETUP = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
print(json.dumps(sorted(name for name in sys.argv[1:] if name in sys.modules)))
"""


def test_setting_django_up_leaves_the_heavy_modules_to_their_users(tmp_path: Path) -> None:
    env = scrubbed_env() | {"MCP_VAR_DIR": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", _SETUP, *NOT_AT_SETUP],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1]) == []


def test_runserver_is_still_daphnes() -> None:
    from django.core.management import get_commands

    assert get_commands()["runserver"] == "daphne"
