"""One `text/event-stream` response on ASGI: the headers once, then events, until either side
ends it. Events are encoded by sse-starlette's ServerSentEvent; a task watches for the client
leaving (`http.disconnect`), after which nothing more is written and `connected` is False."""

import asyncio
import contextlib
import time
from typing import Any

from sse_starlette.event import ServerSentEvent

Headers = list[tuple[bytes, bytes]]

SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    # A proxy that buffers (nginx) would hold progress back until the stream ends.
    (b"x-accel-buffering", b"no"),
]


class SseResponse:
    """An SSE response being written to one HTTP client."""

    def __init__(self, send: Any, receive: Any) -> None:
        self._send = send
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        self._started = False
        self.left = asyncio.Event()
        # When something was last written (monotonic): what keep-alive comments go by.
        self.idle_since = time.monotonic()

    @property
    def connected(self) -> bool:
        """Whether the client is still reading."""
        return not self.left.is_set()

    async def start(self, headers: Headers = ()) -> None:  # type: ignore[assignment]
        """Send the status and headers, and start watching for the client leaving."""
        await self._send(
            {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + list(headers)}
        )
        self._started = True
        self.watch()

    def watch(self) -> None:
        """Start watching for the client leaving (before `start`, when whether to stream is
        decided later: the request's first message)."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="sse-disconnect")

    @property
    def watcher(self) -> "asyncio.Task[None] | None":
        """The task watching for the client leaving (done once it has left)."""
        return self._watcher

    @property
    def started(self) -> bool:
        """Whether the status and headers were sent."""
        return self._started

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.left.set()
                return

    async def event(self, data: str, event_id: str | None, *, retry_ms: int | None = None) -> bool:
        """Write one event; False when the client has left (nothing was written)."""
        encoded = ServerSentEvent(data=data, id=event_id, retry=retry_ms).encode()
        return await self._write(encoded)

    async def comment(self, text: str) -> bool:
        """Write a comment line (a keep-alive clients ignore); False when the client left."""
        return await self._write(ServerSentEvent(comment=text).encode())

    async def _write(self, chunk: bytes) -> bool:
        if not self.connected:
            return False
        self.idle_since = time.monotonic()
        try:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            self.left.set()
            return False
        return True

    async def finish(self) -> None:
        """End the response (if started and the client is still there) and stop watching."""
        if self._started and self.connected:
            with contextlib.suppress(OSError):
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
