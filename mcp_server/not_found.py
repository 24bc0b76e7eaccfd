"""Refuses WebSocket handshakes for paths that are not routes."""

from channels.generic.websocket import AsyncWebsocketConsumer


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Closes with 4404 and a reason, instead of an unhandled routing exception."""

    async def connect(self) -> None:
        """Accept only to explain the refusal with a close reason."""
        await self.accept()
        await self.close(code=4404, reason="no WebSocket endpoint here; use /mcp")
