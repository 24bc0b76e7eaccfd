"""Authentication of a Streamable HTTP request: `Authorization: Bearer <token>` only.

The token is looked up as for a WebSocket handshake (accounts/token_lookups.py, the same
selector the REST API uses) and failed attempts spend the same per-address budget
(accounts/auth_throttle.py). A token in the URL is refused over HTTP (it would end up in
access logs and browser history). Without a token, the caller is anonymous when the operator
names a tenant for that (MCP_ANONYMOUS_TENANT, accounts/anonymous.py), else refused with 401.
"""

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError

from accounts.anonymous import anonymous_principal
from accounts.auth_throttle import failed_auth_throttle, scope_client_address
from accounts.principal import Principal
from accounts.selectors import AuthFailure
from accounts.token_lookups import principal_for_token_shared
from accounts.ws_auth import (
    DATABASE_UNAVAILABLE,
    MISSING_CREDENTIALS,
    bearer_from_header,
    header,
    origin_allowed,
    same_origin,
)

TOKEN_IN_URL = AuthFailure(
    401, "send the token in an Authorization: Bearer header; tokens in the URL are refused"
)


HOST_REFUSED = AuthFailure(403, "Host not allowed")
ORIGIN_REFUSED = AuthFailure(403, "Origin not allowed")


def rebinding_refusal(scope: dict[str, Any]) -> AuthFailure | None:
    """Why a request is refused against DNS rebinding: a Host outside ALLOWED_HOSTS, or a
    browser Origin that is neither listed in MCP_ALLOWED_ORIGINS nor (when that is empty) the
    request's own origin. Clients that are not browsers send no Origin and pass."""
    if same_origin(scope) is None:
        return HOST_REFUSED
    origin = header(scope, b"origin")
    if origin is not None and not origin_allowed(origin, settings.MCP_ALLOWED_ORIGINS, scope):
        return ORIGIN_REFUSED
    return None


def _token_in_query(scope: dict[str, Any]) -> bool:
    query = scope.get("query_string", b"")
    return bool(query) and "token" in parse_qs(query.decode("latin-1"))


async def authenticate_http(scope: dict[str, Any]) -> Principal | AuthFailure:
    """The caller of an HTTP request, or why it is refused (status and reason)."""
    throttle = failed_auth_throttle()
    address = scope_client_address(scope)
    refusal = throttle.refusal(address)
    if refusal is not None:
        return refusal
    raw = bearer_from_header(scope)
    try:
        if raw is not None:
            outcome = await principal_for_token_shared(raw)
            if isinstance(outcome, AuthFailure) and outcome.status == 401:
                throttle.record_failure(address)
            return outcome
        if _token_in_query(scope):
            return TOKEN_IN_URL
        if settings.MCP_ANONYMOUS_TENANT:
            return await database_sync_to_async(anonymous_principal)(settings.MCP_ANONYMOUS_TENANT)
    except (OperationalError, InterfaceError):
        return DATABASE_UNAVAILABLE
    return MISSING_CREDENTIALS


def challenge(failure: AuthFailure) -> list[tuple[bytes, bytes]]:
    """The headers that go with a refusal: the Bearer challenge of a 401, Retry-After."""
    headers = []
    if failure.status == 401:
        error = "" if failure is MISSING_CREDENTIALS else ', error="invalid_token"'
        headers.append((b"www-authenticate", f'Bearer realm="mcp"{error}'.encode()))
    if failure.retry_after is not None:
        headers.append((b"retry-after", b"%d" % failure.retry_after))
    return headers
