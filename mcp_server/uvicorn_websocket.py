"""uvicorn's sans-I/O WebSocket protocol, aware that a denial response ends the handshake.

After an application refuses a handshake with a WebSocket Denial Response (an HTTP 401/403
with a body), uvicorn 0.54 still considers the handshake incomplete and logs
"ASGI callable returned without completing handshake." at ERROR for every refused client,
which would page whoever alerts on errors. Upstream: Kludex/uvicorn PR #3138.
"""

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class DenialAwareWebSocketProtocol(WebSocketsSansIOProtocol):
    """Marks the handshake complete once a denial response has been sent in full."""

    async def send(self, message: Any) -> None:
        """Send as uvicorn does; a final denial body completes the handshake."""
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True
