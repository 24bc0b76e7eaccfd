"""An HTTP response's status line and headers written together with its first body chunk.

uvicorn's httptools protocol writes the head of a response as soon as the application sends
`http.response.start`, and the body as a second write: two `send` system calls (and, with
TCP_NODELAY, two segments) for every JSON answer, which had one socket write cost as much as
the rest of uvicorn's request handling (docs/BENCHMARKS.md, issue 13). `HeadWithBody` stands
between one connection's response cycles and its transport: the first write of each cycle
(its head, or a `100 Continue`) is held until the next write of the same turn of the event
loop, which joins it, or until that turn ends, when it goes out alone (a stream whose first
event comes later still gets its headers at once).
"""

import asyncio


class HeadWithBody:
    """The transport as uvicorn's HTTP response cycles of one connection see it."""

    __slots__ = ("_held", "_holding", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._holding = False

    def hold_next(self) -> None:
        """A response cycle starts: hold its first write."""
        self._holding = True

    def write(self, data: bytes) -> None:
        """Write `data`, joined to a held head; a cycle's first write is held for the turn."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(b"".join((held, data)))
        elif self._holding:
            self._holding = False
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is held (the turn that held it ended without another write)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def is_closing(self) -> bool:
        """Whether the transport is closing or closed."""
        return self._transport.is_closing()

    def close(self) -> None:
        """Write what is held, then close the transport."""
        self.flush()
        self._transport.close()
