"""Resource updates of the runs this process runs: who watches them, and coalesced news of
their changes once history has them.

A session that subscribes to a run's resources sends `resource.watch` to every runner; the
process running that run keeps the watcher (one that does not run it yet keeps the watch
PENDING_WATCH_SECONDS, as an attach). The history writer tells it what each batch wrote;
watchers of a run hear `resource.updated` at most once per interval, the run's end at once
(and then the watch is over). Nothing is sent for runs nobody watches.
"""

import asyncio
import logging
import time
from uuid import UUID

from channels.layers import BaseChannelLayer

from mcp_server.cluster import decoding, messages, session_messages
from mcp_server.runtime.runner import OperationRunner

logger = logging.getLogger(__name__)

# How long a watch of a run this process has not started is kept (it may be on its way here).
PENDING_WATCH_SECONDS = 30.0


class RunUpdates:
    """The watchers of this process's runs, and their updates, coalesced."""

    def __init__(
        self, *, runner: OperationRunner, layer: BaseChannelLayer | None, interval: float
    ) -> None:
        self.runner = runner
        self.layer = layer
        self.interval = interval
        self._watchers: dict[UUID, set[str]] = {}
        self._pending: dict[UUID, tuple[float, set[str]]] = {}
        # Read from the history writer's thread: replaced whole, never changed in place.
        self._watched: frozenset[UUID] = frozenset()
        self._last_sent: dict[UUID, float] = {}
        self._due: dict[UUID, tuple[bool, asyncio.TimerHandle]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Take the running loop, where the writer's news is handled."""
        self._loop = asyncio.get_running_loop()

    def _refresh(self) -> None:
        self._watched = frozenset(self._watchers) | frozenset(self._pending)

    async def handle(self, message: decoding.ClusterMessage) -> None:
        """A watch or unwatch from any process."""
        assert isinstance(message, session_messages.RunWatch | session_messages.RunUnwatch)
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._pending.items() if expires < now]:
            del self._pending[key]
        key, channel = message.id, message.channel
        if isinstance(message, session_messages.RunUnwatch):
            self._unwatch(key, channel)
        elif self.runner.is_running(key) or key in self._watchers:
            self._watchers.setdefault(key, set()).add(channel)
        else:
            self._pending.setdefault(key, (now + PENDING_WATCH_SECONDS, set()))[1].add(channel)
        self._refresh()

    def _unwatch(self, key: UUID, channel: str) -> None:
        watchers = self._watchers.get(key)
        if watchers is not None:
            watchers.discard(channel)
            if not watchers:
                self._forget(key)
        pending = self._pending.get(key)
        if pending is not None:
            pending[1].discard(channel)
            if not pending[1]:
                del self._pending[key]

    def written(
        self, changed: frozenset[UUID], errors: frozenset[UUID], ended: frozenset[UUID]
    ) -> None:
        """What a history batch wrote (called on the writer's thread)."""
        watched = self._watched
        if not watched or self._loop is None:
            return
        touched = (changed | errors) & watched
        if touched:
            self._loop.call_soon_threadsafe(self._changed, touched, errors, ended)

    def _changed(
        self, touched: frozenset[UUID], errors: frozenset[UUID], ended: frozenset[UUID]
    ) -> None:
        for key in touched:
            pending = self._pending.pop(key, None)
            if pending is not None:  # its first write here: this process runs it
                self._watchers.setdefault(key, set()).update(pending[1])
            self._schedule(key, errors=key in errors, ended=key in ended)
        self._refresh()

    def _schedule(self, key: UUID, *, errors: bool, ended: bool) -> None:
        earlier = self._due.pop(key, None)
        if earlier is not None:
            errors = errors or earlier[0]
            earlier[1].cancel()
        wait = self._last_sent.get(key, -float("inf")) + self.interval - time.monotonic()
        if ended or wait <= 0:
            self._send_soon(key, errors=errors, ended=ended)
            return
        assert self._loop is not None
        handle = self._loop.call_later(wait, self._send_soon, key, errors, False)
        self._due[key] = (errors, handle)

    def _send_soon(self, key: UUID, errors: bool = False, ended: bool = False) -> None:
        self._due.pop(key, None)
        channels = set(self._watchers.get(key, ()))
        self._last_sent[key] = time.monotonic()
        if ended:
            self._forget(key)
            self._refresh()
        if channels:
            update = session_messages.RunUpdated(id=key, errors=errors, ended=ended).encode()
            sending = asyncio.get_running_loop().create_task(self._send(channels, update))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    def _forget(self, key: UUID) -> None:
        self._watchers.pop(key, None)
        self._pending.pop(key, None)
        self._last_sent.pop(key, None)
        due = self._due.pop(key, None)
        if due is not None:
            due[1].cancel()

    async def _send(self, channels: set[str], update: messages.Message) -> None:
        if self.layer is None:
            return
        for channel in channels:
            try:
                await self.layer.send(channel, update)
            except Exception:
                # The subscriber recovers the run's end from history (Liveness).
                logger.warning("could not send a resource update to %s", channel, exc_info=True)

    @property
    def watched(self) -> frozenset[UUID]:
        """The runs someone watches here (or may soon: watches pending their start)."""
        return self._watched
