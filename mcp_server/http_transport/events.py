"""The SSE events of an HTTP session's streams, kept so a client that lost a stream gets them.

Every event sent on a stream is appended here first; its SSE id is `<stream>/<entry>`, unique
across the session's streams and naming the stream it belongs to, so `Last-Event-ID` finds the
stream to replay and where to resume. With REDIS_URL a stream is a Redis Stream
(`http-events:<session>:<stream>`: XADD with an approximate MAXLEN of
MCP_HTTP_EVENTS_PER_STREAM, the key expiring MCP_HTTP_EVENT_RETENTION_SECONDS after its last
event; XRANGE replays), readable by every web process; without, the same bounds in memory.
A stream's last event is marked `final`: a client resuming it gets the rest, then the end.
"""

import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

# A stream's name: its kind (g: a GET stream, p: a POST's response stream), then 15 hex digits.
_STREAM = re.compile(r"[gp][0-9a-f]{15}")
_ENTRY = re.compile(r"\d{1,20}-\d{1,20}")


def new_stream_name(kind: str) -> str:
    """A fresh name for a stream of `kind` ("g": GET, "p": a POST's response)."""
    return kind + secrets.token_hex(8)[1:]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a stream: its SSE id, its data (empty: a priming event), and whether it
    ends the stream."""

    event_id: str
    data: bytes
    final: bool


@dataclass(frozen=True, slots=True)
class StreamCursor:
    """A position in one stream of a session, as a `Last-Event-ID` names it."""

    stream: str
    entry: str

    @classmethod
    def parse(cls, last_event_id: str) -> "StreamCursor | None":
        """The cursor an event id names, or None when it is not one of ours."""
        stream, _, entry = last_event_id.strip().partition("/")
        if not _STREAM.fullmatch(stream) or not _ENTRY.fullmatch(entry):
            return None
        return cls(stream, entry)


def _entry_key(entry: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry.partition("-")
    return int(milliseconds), int(sequence)


class EventStore(Protocol):
    """Bounded per-stream logs of the events sent to a session's client."""

    async def append(self, session_id: str, stream: str, data: bytes, *, final: bool) -> str:
        """Keep one event of `stream`; its SSE id."""

    async def after(self, session_id: str, cursor: StreamCursor) -> list[StoredEvent] | None:
        """The events of the cursor's stream after it, oldest first; None: no such stream."""


class MemoryEventStore:
    """The event store of a single process (no REDIS_URL)."""

    def __init__(
        self,
        *,
        per_stream: int,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_stream = per_stream
        self.retention_seconds = retention_seconds
        self._clock = clock
        # Oldest touched first: every append gives its stream the latest expiry and moves it to
        # the end, so the expired streams are always at the front and a sweep never scans.
        self._streams: OrderedDict[
            tuple[str, str], tuple[float, deque[tuple[str, bytes, bool]]]
        ] = OrderedDict()
        self._sequence = 0

    def _sweep(self, now: float) -> None:
        streams = self._streams
        while streams:
            expires, _ = next(iter(streams.values()))
            if expires > now:
                return
            streams.popitem(last=False)

    async def append(self, session_id: str, stream: str, data: bytes, *, final: bool) -> str:
        """Keep one event of `stream`; its SSE id."""
        now = self._clock()
        self._sweep(now)
        self._sequence += 1
        entry = f"{int(now * 1000)}-{self._sequence}"
        _, events = self._streams.get((session_id, stream), (0.0, deque(maxlen=self.per_stream)))
        events.append((entry, data, final))
        self._streams[(session_id, stream)] = (now + self.retention_seconds, events)
        self._streams.move_to_end((session_id, stream))
        return f"{stream}/{entry}"

    async def after(self, session_id: str, cursor: StreamCursor) -> list[StoredEvent] | None:
        """The events of the cursor's stream after it; None: no such stream (or expired)."""
        self._sweep(self._clock())
        found = self._streams.get((session_id, cursor.stream))
        if found is None:
            return None
        start = _entry_key(cursor.entry)
        return [
            StoredEvent(f"{cursor.stream}/{entry}", data, final)
            for entry, data, final in found[1]
            if _entry_key(entry) > start
        ]


class RedisEventStore:
    """The event store every web process of a cluster shares (Redis Streams)."""

    def __init__(
        self, redis: Redis, *, prefix: str, per_stream: int, retention_seconds: float
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_stream = per_stream
        self.retention_seconds = max(1, int(retention_seconds))

    def _key(self, session_id: str, stream: str) -> str:
        return f"{self.prefix}:http-events:{session_id}:{stream}"

    async def append(self, session_id: str, stream: str, data: bytes, *, final: bool) -> str:
        """Keep one event of `stream`; its SSE id."""
        key = self._key(session_id, stream)
        fields: dict[Any, Any] = {"d": data}
        if final:
            fields["f"] = "1"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=self.per_stream, approximate=True)
            pipe.expire(key, self.retention_seconds)
            entry, _ = await pipe.execute()
        return f"{stream}/{entry.decode() if isinstance(entry, bytes) else entry}"

    async def after(self, session_id: str, cursor: StreamCursor) -> list[StoredEvent] | None:
        """The events of the cursor's stream after it; None: no such stream (or expired)."""
        key = self._key(session_id, cursor.stream)
        entries: list[Any] = await self.redis.xrange(key, min=f"({cursor.entry}", max="+") or []
        if not entries and not await self.redis.exists(key):
            return None
        events = []
        for entry, fields in entries:
            name = entry.decode() if isinstance(entry, bytes) else entry
            events.append(
                StoredEvent(f"{cursor.stream}/{name}", fields.get(b"d", b""), b"f" in fields)
            )
        return events
