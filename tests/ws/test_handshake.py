"""Authentication of the WebSocket handshake through the full ASGI stack."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone

from accounts.models import Membership, Tenant
from accounts.services import IssuedToken, token_create, token_revoke
from tests.accounts.factories import member_create, member_token
from tests.ws.conftest import Headers, ws_connect

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED_ORIGIN = "http://127.0.0.1:8000"


def _bearer(raw: str) -> Headers:
    return [(b"authorization", f"Bearer {raw}".encode())]


async def _assert_refused(code: int, path: str = "/mcp", headers: Headers | None = None) -> str:
    async with ws_connect(path, headers=headers) as (client, (accepted, _)):
        # Without the Denial Response extension the refusal is an accept then a close.
        assert accepted
        closed_code, reason = await client.closed_with()
    assert closed_code == code
    assert reason
    return reason


async def _assert_accepted(path: str, headers: Headers | None = None) -> None:
    async with ws_connect(path, headers=headers) as (client, (accepted, _)):
        assert accepted
        reply = await client.request("ping")
        assert reply == {"jsonrpc": "2.0", "id": 1, "result": {}}


# --- tokens ------------------------------------------------------------------------------


async def test_token_in_query(token_path: Callable[..., str]) -> None:
    await _assert_accepted(token_path())


async def test_token_in_authorization_header(issued: IssuedToken) -> None:
    await _assert_accepted("/mcp", _bearer(issued.raw))


async def test_bearer_scheme_is_case_insensitive(issued: IssuedToken) -> None:
    await _assert_accepted("/mcp", [(b"authorization", f"bearer {issued.raw}".encode())])


async def test_header_wins_over_query(issued: IssuedToken) -> None:
    await _assert_refused(4401, f"/mcp?token={issued.raw}", _bearer("mcp_wrong"))


async def test_subprotocol_mcp_is_selected_when_offered(token_path: Callable[..., str]) -> None:
    async with ws_connect(token_path(), subprotocols=["other", "mcp"]) as (_, outcome):
        assert outcome == (True, "mcp")


async def test_no_subprotocol_when_mcp_not_offered(token_path: Callable[..., str]) -> None:
    async with ws_connect(token_path(), subprotocols=["graphql-ws"]) as (_, outcome):
        assert outcome == (True, None)
    async with ws_connect(token_path()) as (_, outcome):
        assert outcome == (True, None)


@pytest.mark.usefixtures("transactional_db")
async def test_no_credentials() -> None:
    reason = await _assert_refused(4401)
    assert "authentication required" in reason


@pytest.mark.usefixtures("issued")
@pytest.mark.parametrize(
    "token",
    ["mcp_" + "x" * 43, "not-a-token", "mcp_", "mcp_" + "a" * 300],
)
async def test_wrong_token(token: str) -> None:
    reason = await _assert_refused(4401, f"/mcp?token={token}")
    assert reason == "invalid token"
    await _assert_refused(4401, "/mcp", _bearer(token))


async def test_revoked_token(issued: IssuedToken) -> None:
    await _revoke(issued)
    reason = await _assert_refused(4401, f"/mcp?token={issued.raw}")
    assert reason == "token revoked"


async def test_expired_token(transactional_db: None) -> None:
    expired = await _member_token("bob", expires_at=timezone.now() - timedelta(seconds=1))
    reason = await _assert_refused(4401, "/mcp", _bearer(expired.raw))
    assert reason == "token expired"


async def test_inactive_user(issued: IssuedToken) -> None:
    await _set_user_active(issued.token.user_id, False)
    reason = await _assert_refused(4403, f"/mcp?token={issued.raw}")
    assert "inactive" in reason


async def test_inactive_tenant(issued: IssuedToken) -> None:
    await _set_tenant_active("acme", False)
    reason = await _assert_refused(4403, f"/mcp?token={issued.raw}")
    assert "inactive" in reason


async def test_user_without_tenant(transactional_db: None) -> None:
    raw = await _orphan_token()
    reason = await _assert_refused(4403, f"/mcp?token={raw}")
    assert "no tenant" in reason


# --- session cookie ----------------------------------------------------------------------


def _cookie(session_key: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())


async def test_cookie_with_allowed_origin(logged_in_session: str) -> None:
    assert ALLOWED_ORIGIN in settings.MCP_ALLOWED_ORIGINS
    await _assert_accepted(
        "/mcp", [_cookie(logged_in_session), (b"origin", ALLOWED_ORIGIN.encode())]
    )


async def test_cookie_with_foreign_origin(logged_in_session: str) -> None:
    reason = await _assert_refused(
        4403, "/mcp", [_cookie(logged_in_session), (b"origin", b"https://evil.example")]
    )
    assert "origin" in reason


async def test_cookie_without_origin(logged_in_session: str) -> None:
    await _assert_refused(4403, "/mcp", [_cookie(logged_in_session)])


async def test_cookie_of_no_session(transactional_db: None) -> None:
    await _assert_refused(
        4401, "/mcp", [_cookie("nosuchsession"), (b"origin", ALLOWED_ORIGIN.encode())]
    )


async def test_cookie_of_inactive_tenant(logged_in_session: str) -> None:
    await _set_tenant_active("acme", False)
    await _assert_refused(
        4403, "/mcp", [_cookie(logged_in_session), (b"origin", ALLOWED_ORIGIN.encode())]
    )


# --- routing -----------------------------------------------------------------------------


async def test_unknown_path_is_closed_with_4404(token_path: Callable[..., str]) -> None:
    async with ws_connect(token_path("/nowhere")) as (client, (accepted, _)):
        assert accepted
        code, reason = await client.closed_with()
    assert code == 4404
    assert "/mcp" in reason


@pytest.mark.usefixtures("transactional_db")
async def test_unknown_path_still_requires_authentication() -> None:
    await _assert_refused(4401, "/nowhere")


# --- setup helpers (database work runs off the event loop) -------------------------------


@pytest.fixture
def logged_in_session(transactional_db: None) -> str:
    user = member_create("carol", tenant_slug="acme")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    return session.session_key


def _sync_revoke(issued: IssuedToken) -> None:
    token_revoke(token=issued.token)


async def _revoke(issued: IssuedToken) -> None:
    await sync_to_async(_sync_revoke)(issued)


async def _member_token(username: str, **options: object) -> IssuedToken:
    return await sync_to_async(member_token)(username, **options)  # type: ignore[arg-type]


async def _set_user_active(user_id: int, active: bool) -> None:
    def update() -> None:
        get_user_model().objects.filter(pk=user_id).update(is_active=active)

    await sync_to_async(update)()


async def _set_tenant_active(slug: str, active: bool) -> None:
    def update() -> None:
        Tenant.objects.filter(slug=slug).update(is_active=active)

    await sync_to_async(update)()


async def _orphan_token() -> str:
    def create() -> str:
        user: AbstractBaseUser = member_create("dave", tenant_slug="lonely")
        Membership.objects.filter(user=user).delete()
        return token_create(user=user).raw

    return await sync_to_async(create)()
