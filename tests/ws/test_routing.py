"""WebSocketPathRouter: which consumer a handshake's path reaches, with the scope itself."""

from typing import Any

import pytest

from mcp_server.routing import WebSocketPathRouter


class Recorder:
    """An ASGI application that keeps the scopes it was called with."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)


@pytest.mark.parametrize(
    ("path", "root_path", "reaches_mcp"),
    [
        ("/mcp", "", True),
        ("//mcp", "", True),
        ("/api/mcp", "/api", True),
        ("/mcp/", "", False),
        ("/mcpx", "", False),
        ("/", "", False),
        ("/other/mcp", "", False),
    ],
)
async def test_paths_reach_their_consumer_with_the_connections_own_scope(
    path: str, root_path: str, reaches_mcp: bool
) -> None:
    router = WebSocketPathRouter()
    mcp, not_found = Recorder(), Recorder()
    router.mcp, router.not_found = mcp, not_found
    scope = {"type": "websocket", "path": path, "root_path": root_path}
    await router(scope, None, None)
    reached = mcp if reaches_mcp else not_found
    assert reached.scopes == [scope] and reached.scopes[0] is scope
    assert (not_found if reaches_mcp else mcp).scopes == []
