"""uvicorn's sans-I/O WebSocket protocol, aware of denial responses and bounded outbound, and
its httptools HTTP protocol, freed by reference counting after an upgrade and writing each
response's head with its body (mcp_server/response_writes.py).

After an application refuses a handshake with a WebSocket Denial Response (an HTTP 401/403
with a body), uvicorn 0.54 still considers the handshake incomplete and logs
"ASGI callable returned without completing handshake." at ERROR for every refused client,
which would page whoever alerts on errors. Upstream: Kludex/uvicorn PR #3138.

A client that does not read its replies makes them pile up in this process: in the transport's
write buffer and in sends waiting for it to drain (measured: 100 echo replies of 800 KiB left
57 MB in the write buffer, because uvicorn wakes every waiting send at once when the buffer
drains, and 11 MB more in waiting sends). `McpWebSocketProtocol` lets one send at
a time through when the buffer drains and closes a connection whose unread bytes pass the
bound the application set at accept (`OUTBOUND_LIMIT_EXTENSION`). Its receive queue and
`writable` event are the slim ones of mcp_server/slim_waits.py.
"""

import asyncio
import ctypes
from asyncio import TimerHandle
from typing import Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from mcp_server.response_writes import HeadWithBody
from mcp_server.slim_waits import SlimEvent, SlimQueue

# The scope extension through which the application bounds a connection's unread bytes:
# before accepting, it sets `scope["extensions"][OUTBOUND_LIMIT_EXTENSION]["bytes"]`.
OUTBOUND_LIMIT_EXTENSION = "mcp.outbound_limit"
# Policy violation: the client broke the rule that it reads what it asked for.
CLOSE_UNREAD_OUTBOUND = 1008
# How long a connection closed for not reading may still flush its close frame before its
# buffered bytes are dropped (a slow reader gets the reason; a client that never reads loses
# nothing it would have read).
UNREAD_CLOSE_GRACE = 2.0
# glibc keeps freed memory for reuse; after such a close it is handed back to the system.
# Closes within one grace share one trim (a trim walks the heap: a client closing in a loop
# must not keep the event loop busy with them).
_memory_release: TimerHandle | None = None


def _release_freed_memory() -> None:
    global _memory_release
    _memory_release = None
    malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(0)


def schedule_memory_release(loop: asyncio.AbstractEventLoop, delay: float) -> None:
    """Return freed memory to the system in `delay` seconds (glibc only), unless already due."""
    global _memory_release
    if _memory_release is None:
        _memory_release = loop.call_later(delay, _release_freed_memory)


class McpHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP protocol, letting go of its parser once it has handed its
    connection to the WebSocket protocol.

    The parser calls back into the protocol that made it, so the two (and the transport,
    its flow control and the upgrade request's headers, ~29 objects) stayed in a cycle after
    every upgrade until a garbage collection found them: in a reconnect storm, thousands of
    them for full collections to walk (docs/BENCHMARKS.md, issue 17). uvicorn drops the
    parser the same way when an HTTP connection is lost.
    """

    _writes: HeadWithBody | None = None

    def handle_websocket_upgrade(self) -> None:
        """Hand the connection to the WebSocket protocol, then drop the parser."""
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """Start the request's cycle as uvicorn does, writing through `HeadWithBody`: a whole
        response in one write (mcp_server/response_writes.py)."""
        writes = self._writes
        if writes is None:
            writes = self._writes = HeadWithBody(self.transport, self.loop)
        writes.hold_next()
        cycle.transport = writes  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)


class McpWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's protocol, aware of denial responses and bounding unread outbound bytes.

    A final denial body completes the handshake. Unread bytes are the transport's write
    buffer plus the messages waiting for it to drain; a connection whose next message would
    take them past its bound is closed (1008, with a reason), unless nothing is unread (one
    reply alone is never too big: sizes are the message size limit's job).
    """

    outbound_limit: int | None = None
    waiting_bytes = 0
    unread_closed = False
    _abort_timer: TimerHandle | None = None
    # The extension's dict in this connection's scope, where the application sets the bound.
    _outbound_extension: dict[object, object] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The same use, without the four deques of asyncio's (3 KiB per connection).
        self.queue = SlimQueue()  # type: ignore[assignment]
        self.writable = SlimEvent()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        """Offer the outbound-limit extension in the scope of the handshake."""
        super().handle_connect(event)
        if self.handshake_initiated and not self.close_sent:
            self._outbound_extension = {}
            extensions = self.scope.setdefault("extensions", {})
            assert extensions is not None
            extensions[OUTBOUND_LIMIT_EXTENSION] = self._outbound_extension

    async def send(self, message: Any) -> None:
        """Send as uvicorn does, within the connection's outbound bound."""
        kind = message["type"]
        if kind == "websocket.send":
            # The path of every frame: one level of coroutine, a few attribute reads.
            limit = self.outbound_limit
            if limit is not None:
                if self.unread_closed:
                    return  # closed for not reading: nothing more goes out
                text = message.get("text")
                if text is not None:
                    size = len(text) if text.isascii() else len(text.encode())
                else:
                    size = len(message.get("bytes") or b"")
                unread = self.transport.get_write_buffer_size() + self.waiting_bytes
                if unread and unread + size > limit:
                    self._close_unread(unread + size)
                    return
                if not self.writable.is_set() and not await self._wait_writable(size):
                    return
            await super().send(message)
            return
        if kind == "websocket.accept":
            bound = (self._outbound_extension or {}).get("bytes")
            self.outbound_limit = bound if isinstance(bound, int) else None
        elif self.unread_closed:
            return
        await super().send(message)
        if kind == "websocket.accept" and self.handshake_complete:
            # The handshake's response (its Headers: a dict, a list, a list per header) is
            # not read again once sent; kept, it is ~11 objects per connection for every
            # full collection to walk. (The request stays: websockets' parser holds it.)
            self.response = None  # type: ignore[assignment]
        if kind == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True

    async def _wait_writable(self, size: int) -> bool:
        """Wait, counted as unread, until this send may write; False once closed meanwhile."""
        self.waiting_bytes += size
        try:
            # uvicorn wakes every waiting send when the buffer drains; only the first may write.
            while not self.writable.is_set():
                await self.writable.wait()
                if self.unread_closed:
                    return False
        finally:
            self.waiting_bytes -= size
        return True

    def handle_ping(self) -> None:
        """Answer a ping as uvicorn does; pongs a client leaves unread count too."""
        super().handle_ping()
        limit = self.outbound_limit
        if limit is not None and not self.unread_closed:
            unread = self.transport.get_write_buffer_size() + self.waiting_bytes
            if unread > limit:
                self._close_unread(unread)

    def _close_unread(self, unread: int) -> None:
        """Close for not reading: tell the application, send the close frame, free the rest."""
        reason = f"{unread} bytes of replies unread, over the limit of {self.outbound_limit}"
        self.logger.warning(
            '%s - "WebSocket %s" closed with %d: %s',
            get_client_addr(self.scope),
            self.scope["path"],
            CLOSE_UNREAD_OUTBOUND,
            reason,
        )
        self.unread_closed = True
        self.stop_keepalive()
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": CLOSE_UNREAD_OUTBOUND, "reason": reason}
        )
        if not self.close_sent and not self.transport.is_closing():
            self.conn.send_close(CLOSE_UNREAD_OUTBOUND, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        # Waiting sends wake, see `unread_closed` and drop their messages.
        self.writable.set()
        self.transport.close()
        self._abort_timer = self.loop.call_later(UNREAD_CLOSE_GRACE, self.transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        """As uvicorn; after a close for not reading, the memory it held is given back."""
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        super().connection_lost(exc)
        if self.unread_closed:
            # Once the application has cancelled the connection's calls and dropped its replies.
            schedule_memory_release(self.loop, UNREAD_CLOSE_GRACE)
