"""The Streamable HTTP endpoint (`POST`, `GET`, `DELETE /mcp`), an ASGI app beside the
WebSocket consumer on the same path, over the same session, protocol and runtime.

Every request is checked against DNS rebinding (Host, Origin: 403) and authenticated
(accounts/http_auth.py: 401 with a Bearer challenge), then served by its method: `POST`
(post.py) carries one JSON-RPC message, `GET` (get.py) opens or resumes the session's stream
for server-initiated messages, `DELETE` ends the session everywhere (endpoint.py). A refusal
(http_io.HttpRefusal) is answered with its status and a JSON-RPC error without an id.
"""

import logging
from typing import Any

from django.conf import settings

from accounts.http_auth import authenticate_http, challenge, rebinding_refusal
from accounts.selectors import AuthFailure
from accounts.ws_auth import header
from mcp_server.dependencies import REDIS_ERRORS, REDIS_UNAVAILABLE
from mcp_server.http_transport.endpoint import HttpEndpoint
from mcp_server.http_transport.get import serve_get
from mcp_server.http_transport.http_io import HttpRefusal, Receive, Send, TooLarge, respond
from mcp_server.http_transport.post import PostRequests
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.protocol.errors import INVALID_REQUEST, JsonRpcError
from mcp_server.protocol.messages import error_message
from mcp_server.protocol.modern import MODERN_VERSION, MODERN_VERSIONS

logger = logging.getLogger(__name__)


class StreamableHttpApp:
    """The `/mcp` endpoint for HTTP (one per process)."""

    def __init__(self) -> None:
        self.endpoint = HttpEndpoint()
        self.posts = PostRequests(self.endpoint)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Serve one HTTP request to /mcp."""
        runtime: ProcessRuntime = scope["runtime"]
        self.endpoint.local.join(runtime.bus)
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._serve(scope, receive, tracked, runtime)
        except HttpRefusal as refusal:
            if not started:
                reply = error_message(None, JsonRpcError(refusal.code, refusal.message))
                await respond(send, refusal.status, reply, refusal.headers)
        except TooLarge:
            if not started:
                limit = settings.MCP_MAX_MESSAGE_BYTES
                too_big = JsonRpcError(INVALID_REQUEST, f"message over {limit} bytes")
                await respond(send, 413, error_message(None, too_big))
        except REDIS_ERRORS:
            logger.warning("an HTTP request to /mcp met an unreachable Redis")
            if not started:
                down = JsonRpcError(INVALID_REQUEST, REDIS_UNAVAILABLE)
                await respond(send, 503, error_message(None, down), [(b"retry-after", b"5")])

    async def _serve(
        self, scope: dict[str, Any], receive: Receive, send: Send, runtime: ProcessRuntime
    ) -> None:
        refused = rebinding_refusal(scope)
        if refused is not None:
            raise HttpRefusal(403, refused.reason)
        outcome = await authenticate_http(scope)
        if isinstance(outcome, AuthFailure):
            raise HttpRefusal(outcome.status, outcome.reason, headers=challenge(outcome))
        method = scope["method"]
        if method in ("GET", "DELETE") and header(scope, b"mcp-protocol-version") in (
            MODERN_VERSIONS
        ):
            # 2026-07-28 has neither a session stream nor sessions to end (streamable-http.mdx,
            # "Earlier Streamable HTTP Revisions").
            raise HttpRefusal(
                405,
                f"{method} is not part of {MODERN_VERSION}: POST each request",
                headers=[(b"allow", b"POST")],
            )
        if method == "POST":
            await self.posts.serve(scope, receive, send, runtime, outcome)
        elif method == "GET":
            await serve_get(self.endpoint, scope, receive, send, runtime, outcome)
        elif method == "DELETE":
            record = await self.endpoint.record(scope, outcome)
            layer = runtime.bus.layer
            await self.endpoint.end_session(record.session_id, "ended by the client", layer)
            await respond(send, 204)
        else:
            raise HttpRefusal(
                405, f"{method} is not served here", headers=[(b"allow", b"GET, POST, DELETE")]
            )
