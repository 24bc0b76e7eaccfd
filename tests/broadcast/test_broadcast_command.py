"""`manage.py broadcast`: through a real Redis channel layer, as from a separate process."""

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command

from accounts.models import Tenant
from mcp_server.broadcasts import MAX_BROADCAST_LENGTH, channel_layer_reaches_other_processes
from mcp_server.cluster.session_messages import BROADCAST
from tests.accounts.factories import member_create
from tests.broadcast import WebGroupListener

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TEXT = "Server restarts in 5 minutes"


def _db15(redis_url: str) -> str:
    """The test Redis, database 15: never the db 0 a running server may use."""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, "/15", "", ""))


def _redis_layers(address: str, prefix: str = "asgi") -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # socket_timeout None as in config/settings.py: redis-py's 5 s default equals the
            # layer's blocking pop and would end a waiting receive with TimeoutError.
            "CONFIG": {"hosts": [{"address": address, "socket_timeout": None}], "prefix": prefix},
        }
    }


@pytest.fixture
def listener(settings: Any, redis_url: str) -> Iterator[WebGroupListener]:
    """A Redis channel layer under a prefix of this test only, flushed (that prefix) after."""
    settings.CHANNEL_LAYERS = _redis_layers(_db15(redis_url), prefix=f"test-bc-{uuid4().hex}")
    listener = WebGroupListener()
    yield listener
    listener.close()
    async_to_sync(listener.layer.flush)()  # deletes only the keys under this test's prefix


def _run(*args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command("broadcast", *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def _sent(**fields: Any) -> dict[str, Any]:
    return {"type": BROADCAST, "level": "notice", "tenant_id": None, "user_id": None, **fields}


# --- sending -------------------------------------------------------------------------------


def test_to_everyone(listener: WebGroupListener) -> None:
    assert channel_layer_reaches_other_processes()
    output = _run(TEXT)
    assert output == "Broadcast sent to every connected client (level notice).\n"
    assert listener.receive() == _sent(data=TEXT)
    listener.assert_nothing_sent()  # exactly one message


def test_tenant_and_level(listener: WebGroupListener) -> None:
    member_create("alice", tenant_slug="acme")
    output = _run(TEXT, "--tenant", "acme", "--level", "warning")
    assert output == ("Broadcast sent to every connected client of tenant acme (level warning).\n")
    acme = Tenant.objects.get(slug="acme")
    assert listener.receive() == _sent(data=TEXT, level="warning", tenant_id=acme.pk)


def test_user_only(listener: WebGroupListener) -> None:
    bob = member_create("bob", tenant_slug="acme")
    output = _run(TEXT, "--user", "bob")
    assert output == "Broadcast sent to every connected client of user bob (level notice).\n"
    assert listener.receive() == _sent(data=TEXT, user_id=bob.pk)


def test_tenant_and_user(listener: WebGroupListener) -> None:
    bob = member_create("bob", tenant_slug="acme")
    output = _run(TEXT, "--tenant", "acme", "--user", "bob", "--level", "critical")
    assert "of user bob in tenant acme (level critical)" in output
    assert listener.receive() == _sent(
        data=TEXT, level="critical", tenant_id=Tenant.objects.get(slug="acme").pk, user_id=bob.pk
    )


def test_from_a_separate_process_with_redis_url(redis_url: str, settings: Any) -> None:
    """The real use: another process, configured only by REDIS_URL, reaches this one."""
    address = _db15(redis_url)
    settings.CHANNEL_LAYERS = _redis_layers(address)  # the prefix settings.py uses
    listener = WebGroupListener()
    try:
        text = f"restart {uuid4().hex}"
        env = {**os.environ, "REDIS_URL": address}
        done = subprocess.run(
            [sys.executable, "manage.py", "broadcast", text, "--level", "warning"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "Broadcast sent to every connected client (level warning).\n"
        assert listener.receive() == _sent(data=text, level="warning")
    finally:
        listener.close()  # the received message left no key; leaving the group removes ours


# --- refusals ------------------------------------------------------------------------------


def test_in_memory_layer_is_refused(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert not channel_layer_reaches_other_processes()
    with pytest.raises(CommandError, match="needs REDIS_URL set to the Redis the servers use"):
        _run(TEXT)


def test_no_channel_layer_is_refused(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}
    with pytest.raises(CommandError, match="REDIS_URL"):
        _run(TEXT)


def test_unknown_tenant_or_user(listener: WebGroupListener) -> None:
    member_create("alice", tenant_slug="acme")
    with pytest.raises(CommandError, match="tenant 'nope' does not exist"):
        _run(TEXT, "--tenant", "nope")
    with pytest.raises(CommandError, match="user 'nobody' does not exist"):
        _run(TEXT, "--tenant", "acme", "--user", "nobody")
    listener.assert_nothing_sent()


def test_user_not_in_the_tenant_is_refused(listener: WebGroupListener) -> None:
    member_create("alice", tenant_slug="acme")
    member_create("dave", tenant_slug="globex")
    with pytest.raises(CommandError, match="User dave is not a member of tenant acme"):
        _run(TEXT, "--tenant", "acme", "--user", "dave")
    listener.assert_nothing_sent()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "The message is empty"),
        ("  \n\t ", "The message is empty"),
        ("x" * (MAX_BROADCAST_LENGTH + 1), "at most 2,000 are allowed"),
    ],
)
def test_invalid_message(listener: WebGroupListener, text: str, error: str) -> None:
    with pytest.raises(CommandError, match=error):
        _run(text)
    listener.assert_nothing_sent()


def test_invalid_level(listener: WebGroupListener) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'loud'"):
        _run(TEXT, "--level", "loud")
    # passed as a keyword, argparse's choices are skipped: the service still refuses it
    with pytest.raises(CommandError, match="Unknown level 'loud'"):
        _run(TEXT, level="loud")
    listener.assert_nothing_sent()


def test_redis_down_is_a_clear_error(settings: Any) -> None:
    settings.CHANNEL_LAYERS = _redis_layers("redis://127.0.0.1:1/15")  # nothing listens there
    with pytest.raises(CommandError, match="The channel layer did not take the broadcast"):
        _run(TEXT)
