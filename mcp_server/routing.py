"""WebSocket routes: `/mcp` to the MCP consumer, every other path to the 404 consumer."""

from typing import Any

from mcp_server.consumers import McpConsumer
from mcp_server.not_found import NotFoundConsumer

MCP_WEBSOCKET_PATH = "mcp"


class WebSocketPathRouter:
    """Routes a handshake by its path, as Channels' URLRouter did for these two routes
    (`root_path` stripped, then leading slashes), without its copy of the scope.

    URLRouter passes on `dict(scope, path_remaining=..., url_route=...)`, which lives as long
    as the connection beside the scope it copied: ~1.3 KiB and three objects per idle
    connection that every full garbage collection walks (issue 17). No consumer here reads
    `url_route`.
    """

    def __init__(self) -> None:
        self.mcp = McpConsumer.as_asgi()
        self.not_found = NotFoundConsumer.as_asgi()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Hand the connection to the consumer of its path."""
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        consumer = self.mcp if path.lstrip("/") == MCP_WEBSOCKET_PATH else self.not_found
        await consumer(scope, receive, send)
