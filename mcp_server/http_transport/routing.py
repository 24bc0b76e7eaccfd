"""HTTP requests for the MCP endpoint path go to the Streamable HTTP app, all others to
Django (the WebSocket router serves the same path for upgrades)."""

from typing import Any

MCP_PATH = "/mcp"


class McpPathRouter:
    """Sends HTTP requests for /mcp to `mcp`, everything else to `other`."""

    def __init__(self, *, mcp: Any, other: Any) -> None:
        self.mcp = mcp
        self.other = other

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Route one HTTP request by its path."""
        target = self.mcp if scope.get("path") in (MCP_PATH, MCP_PATH + "/") else self.other
        await target(scope, receive, send)
