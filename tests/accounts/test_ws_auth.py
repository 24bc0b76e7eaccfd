"""The pieces of the WebSocket authentication middleware that need no socket."""

from typing import Any

import pytest

from accounts.ws_auth import HEADERS_BY_NAME, bearer_from_scope, header, origin_allowed


def _scope(headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b"") -> dict[str, Any]:
    return {"type": "websocket", "headers": headers or [], "query_string": query}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (_scope([(b"authorization", b"Bearer mcp_abc")]), "mcp_abc"),
        (_scope([(b"authorization", b"BEARER   mcp_abc  ")]), "mcp_abc"),
        (_scope(query=b"token=mcp_q"), "mcp_q"),
        (_scope(query=b"a=1&token=mcp_q&b=2"), "mcp_q"),
        (_scope(query=b"token=mcp_%41"), "mcp_A"),
        (_scope([(b"authorization", b"Bearer mcp_h")], b"token=mcp_q"), "mcp_h"),
        (_scope([(b"authorization", b"Basic eDp5")], b"token=mcp_q"), "mcp_q"),
        (_scope([(b"authorization", b"Bearer ")], b"token=mcp_q"), "mcp_q"),
        (_scope(), None),
        (_scope(query=b"token="), None),
        (_scope(query=b"tok=mcp_q"), None),
        (_scope([(b"authorization", b"Basic eDp5")]), None),
    ],
)
def test_bearer_from_scope(scope: dict[str, Any], expected: str | None) -> None:
    assert bearer_from_scope(scope) == expected


def test_origin_allowed() -> None:
    allowed = ["http://127.0.0.1:8000", "https://app.example"]
    scope = _scope([(b"host", b"app.example")])
    assert origin_allowed("https://app.example", allowed, scope)
    assert not origin_allowed(None, allowed, scope)
    assert not origin_allowed("", allowed, scope)
    assert not origin_allowed("https://app.example.evil", allowed, scope)
    assert not origin_allowed("null", allowed, scope)


@pytest.mark.parametrize(
    ("host", "scheme", "origin", "expected"),
    [
        (b"127.0.0.1:8100", "ws", "http://127.0.0.1:8100", True),
        (b"127.0.0.1:8100", "ws", "http://127.0.0.1:8000", False),
        (b"LOCALHOST:8100", "ws", "http://localhost:8100", True),
        (b"[::1]:8100", "ws", "http://[::1]:8100", True),
        (b"localhost", "wss", "https://localhost", True),
        (b"localhost", "wss", "http://localhost", False),
        (b"127.0.0.1:8100", "ws", "http://localhost:8100", False),
        (b"evil.example:8100", "ws", "http://evil.example:8100", False),  # not in ALLOWED_HOSTS
        (None, "ws", "http://127.0.0.1:8100", False),
    ],
)
def test_without_a_list_only_the_handshakes_own_origin_is_allowed(
    settings: Any, host: bytes | None, scheme: str, origin: str, expected: bool
) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
    scope = {**_scope([(b"host", host)] if host else []), "scheme": scheme}
    assert origin_allowed(origin, [], scope) is expected


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_header_gives_the_first_value_of_a_name(kind: str) -> None:
    headers = [(b"accept", b"text/event-stream"), (b"x-caf\xe9", b"\xe9"), (b"accept", b"*/*")]
    scope = {"type": kind, "headers": headers}
    assert header(scope, b"accept") == "text/event-stream"
    assert header(scope, b"x-caf\xe9") == "\xe9"
    assert header(scope, b"host") is None


def test_an_http_requests_headers_are_read_once_and_a_handshakes_are_not_kept() -> None:
    http = {"type": "http", "headers": [(b"host", b"a.example")]}
    assert header(http, b"host") == "a.example"
    http["headers"] = [(b"host", b"b.example")]  # nothing changes a request's headers
    assert header(http, b"host") == "a.example"
    assert http[HEADERS_BY_NAME] == {b"host": b"a.example"}
    socket = _scope([(b"host", b"a.example")])
    assert header(socket, b"host") == "a.example"
    assert HEADERS_BY_NAME not in socket  # a connection's scope lives as long as it
