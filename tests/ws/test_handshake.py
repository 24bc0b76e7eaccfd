"""Authentication of the WebSocket handshake through the full ASGI stack.

Each test covers several handshakes: on PostgreSQL every transactional test costs a flush.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Membership, Tenant
from accounts.services import IssuedToken, token_create, token_revoke
from mcp_server.process_runtime import ProcessRuntime
from tests.accounts.factories import member_create, member_token
from tests.ws.conftest import Headers, ws_connect

pytestmark = pytest.mark.django_db(transaction=True)

# The handshake's own origin: the Host header it was addressed to (WebsocketCommunicator sends
# none unless told), allowed when MCP_ALLOWED_ORIGINS is empty, the default.
HOST = (b"host", b"127.0.0.1:8100")
ALLOWED_ORIGIN = "http://127.0.0.1:8100"


def _bearer(raw: str) -> Headers:
    return [(b"authorization", f"Bearer {raw}".encode())]


def _cookie(session_key: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())


def _origin(origin: str) -> tuple[bytes, bytes]:
    return (b"origin", origin.encode())


async def _refusal(
    runtime: ProcessRuntime, path: str = "/mcp", headers: Headers | None = None
) -> tuple[int, str]:
    """The close code and reason of a refused handshake."""
    async with ws_connect(runtime, path, headers=headers) as (client, (accepted, _)):
        # Without the Denial Response extension a refusal is an accept, then a close.
        assert accepted
        code, reason = await client.closed_with()
    assert reason, "a refusal must say why"
    return code, reason


async def _assert_accepted(
    runtime: ProcessRuntime, path: str, headers: Headers | None = None
) -> None:
    async with ws_connect(runtime, path, headers=headers) as (client, (accepted, _)):
        assert accepted
        reply = await client.request("ping")
        assert reply == {"jsonrpc": "2.0", "id": 1, "result": {}}


# --- tokens ------------------------------------------------------------------------------


async def test_token_in_query_or_authorization_header(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    await _assert_accepted(runtime, f"/mcp?token={issued.raw}")
    await _assert_accepted(runtime, "/mcp", _bearer(issued.raw))
    await _assert_accepted(runtime, "/mcp", [(b"authorization", f"bearer {issued.raw}".encode())])
    # Another Authorization scheme leaves the query token to decide.
    await _assert_accepted(runtime, f"/mcp?token={issued.raw}", [(b"authorization", b"Basic eDp5")])


async def test_subprotocol_mcp_selected_when_offered(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path(), subprotocols=["other", "mcp"]) as (_, outcome):
        assert outcome == (True, "mcp")
    async with ws_connect(runtime, token_path(), subprotocols=["graphql-ws"]) as (_, outcome):
        assert outcome == (True, None)
    async with ws_connect(runtime, token_path()) as (_, outcome):
        assert outcome == (True, None)


async def test_refused_with_4401(runtime: ProcessRuntime, issued: IssuedToken) -> None:
    code, reason = await _refusal(runtime)
    assert (code, reason) == (4401, "authentication required: send a bearer token")

    for wrong in ("mcp_" + "x" * 43, "not-a-token", "mcp_", "mcp_" + "a" * 300):
        assert await _refusal(runtime, f"/mcp?token={wrong}") == (4401, "invalid token"), wrong
        assert await _refusal(runtime, "/mcp", _bearer(wrong)) == (4401, "invalid token"), wrong

    # A bad header token is not rescued by a good query token.
    assert (await _refusal(runtime, f"/mcp?token={issued.raw}", _bearer("mcp_wrong")))[0] == 4401

    expiring = await sync_to_async(member_token)(
        "bob", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert await _refusal(runtime, "/mcp", _bearer(expiring.raw)) == (4401, "token expired")

    await sync_to_async(token_revoke)(token=issued.token)
    assert await _refusal(runtime, f"/mcp?token={issued.raw}") == (4401, "token revoked")


async def test_refused_with_4403_for_inactive_accounts(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    orphan = await sync_to_async(_token_of_user_without_tenant)()
    assert await _refusal(runtime, f"/mcp?token={orphan}") == (4403, "user belongs to no tenant")

    user_model = get_user_model()
    await sync_to_async(_update)(
        user_model.objects.filter(pk=issued.token.user_id), is_active=False
    )
    code, reason = await _refusal(runtime, f"/mcp?token={issued.raw}")
    assert (code, reason) == (4403, "account or tenant is inactive")

    await sync_to_async(_update)(user_model.objects.filter(pk=issued.token.user_id), is_active=True)
    await _assert_accepted(runtime, f"/mcp?token={issued.raw}")
    # That token's caller is now kept for a few seconds (accounts/token_lookups.py), and a
    # plain UPDATE announces nothing: the re-check's bound covers it. Another token of the
    # same user is looked up, and refused.
    other = await sync_to_async(token_create)(user=issued.token.user, name="other")
    await sync_to_async(_update)(Tenant.objects.filter(slug="acme"), is_active=False)
    code, reason = await _refusal(runtime, f"/mcp?token={other.raw}")
    assert (code, reason) == (4403, "account or tenant is inactive")


# --- session cookie ----------------------------------------------------------------------


async def test_cookie_with_an_allowed_origin(
    runtime: ProcessRuntime, logged_in_session: str
) -> None:
    assert settings.MCP_ALLOWED_ORIGINS == []
    await _assert_accepted(
        runtime, "/mcp", [HOST, _cookie(logged_in_session), _origin(ALLOWED_ORIGIN)]
    )


async def test_cookie_refusals(runtime: ProcessRuntime, logged_in_session: str) -> None:
    cookie = _cookie(logged_in_session)
    code, reason = await _refusal(runtime, "/mcp", [HOST, cookie, _origin("https://evil.example")])
    assert code == 4403
    assert "origin" in reason
    # A near miss is still a foreign origin.
    near_miss = _origin(ALLOWED_ORIGIN + ".evil.example")
    assert (await _refusal(runtime, "/mcp", [HOST, cookie, near_miss]))[0] == 4403
    assert (await _refusal(runtime, "/mcp", [HOST, cookie]))[0] == 4403
    # Another port of the same host (the old default, :8000, whatever was served).
    assert (await _refusal(runtime, "/mcp", [HOST, cookie, _origin("http://127.0.0.1:8000")]))[
        0
    ] == 4403
    # Without a Host there is no origin of its own to match.
    assert (await _refusal(runtime, "/mcp", [cookie, _origin(ALLOWED_ORIGIN)]))[0] == 4403

    # A cookie that names no logged-in session.
    unknown = [HOST, _cookie("nosuchsession"), _origin(ALLOWED_ORIGIN)]
    assert (await _refusal(runtime, "/mcp", unknown))[0] == 4401

    await sync_to_async(_update)(Tenant.objects.filter(slug="acme"), is_active=False)
    assert (await _refusal(runtime, "/mcp", [HOST, cookie, _origin(ALLOWED_ORIGIN)]))[0] == 4403


# --- routing -----------------------------------------------------------------------------


async def test_unknown_path_closed_with_4404(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    code, reason = await _refusal(runtime, token_path("/nowhere"))
    assert code == 4404
    assert "/mcp" in reason
    # Authentication comes first: an anonymous client learns nothing about routes.
    assert (await _refusal(runtime, "/nowhere"))[0] == 4401


# --- setup -------------------------------------------------------------------------------


@pytest.fixture
def logged_in_session(issued: IssuedToken) -> str:
    """The session key of a browser logged in as a member of `acme`."""
    user = member_create("carol", tenant_slug="acme")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    return session.session_key


def _token_of_user_without_tenant() -> str:
    user = member_create("dave", tenant_slug="lonely")
    Membership.objects.filter(user_id=user.pk).delete()
    return token_create(user=user).raw


def _update(queryset: QuerySet[Any], **values: Any) -> None:
    queryset.update(**values)


async def test_without_the_denial_extension_over_the_cap_closes_with_4429(
    runtime: ProcessRuntime, issued: IssuedToken, token_path: Callable[..., str], settings: Any
) -> None:
    settings.MCP_MAX_CONNECTIONS_PER_USER = 1
    async with ws_connect(runtime, token_path()) as (_first, (accepted, _)):
        assert accepted
        assert await _refusal(runtime, token_path()) == (
            4429,
            "too many connections for this user on this server (limit 1)",
        )
    await _assert_accepted(runtime, token_path())  # the first one's close released its place
