"""A worker's signs of life, given from a thread of its own while its event loop is not hung.

A worker's event loop may get no turn for seconds: its process starved of CPU on a loaded
machine, or busy with hundreds of calls' progress. Stamps set from the loop then expired, and
the calls of a worker still running them were given up as its process's ("its process
stopped responding"). So a thread, with its own synchronous Redis connection, sets the
worker's stamp (`alive:<worker>`, cluster/dispatch.py) every MCP_OPERATION_LOST_AFTER / 12
with a time to live of half that bound, and heartbeats the worker's rows when the loop's own
heartbeat round is late (`Liveness.heartbeat_if_late`). It does so only while the loop has
had a turn within MCP_WORKER_HUNG_AFTER (a callback on the loop notes each turn it gets): a
loop hung for good loses its stamp, and its calls are given up within MCP_WORKER_HUNG_AFTER
plus MCP_OPERATION_LOST_AFTER of its last turn. A process that dies (kill -9) or is stopped
(SIGSTOP) takes the thread with it: its stamp expires as before.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connections

from mcp_server.cluster.dispatch import Dispatch
from mcp_server.cluster.liveness import Liveness

logger = logging.getLogger(__name__)


class LoopTurns:
    """When an event loop last had a turn: a callback on it every `interval` notes it."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note the loop's turns from now on."""
        self._note(loop)

    def _note(self, loop: asyncio.AbstractEventLoop) -> None:
        self.last = time.monotonic()
        self._handle = loop.call_later(self.interval, self._note, loop)

    def stop(self) -> None:
        """Stop noting (on the loop)."""
        if self._handle is not None:
            self._handle.cancel()

    def silent_for(self) -> float:
        """Seconds since the loop's last noted turn (any thread)."""
        return time.monotonic() - self.last


class KeepAlive:
    """Stamps a worker alive and keeps its rows heartbeaten from a thread, while its event
    loop has had a turn within `hung_after` seconds."""

    def __init__(
        self, *, dispatch: Dispatch, liveness: Liveness, name: str, ttl: float, interval: float
    ) -> None:
        self.stamp_key, self.workers_key = dispatch.alive_keys(name)
        self.liveness = liveness
        self.name = name
        self.ttl = ttl
        self.interval = interval
        self.hung_after = settings.MCP_WORKER_HUNG_AFTER
        self.turns = LoopTurns(interval)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.MCP_DEPENDENCY_TIMEOUT,
            socket_connect_timeout=settings.MCP_DEPENDENCY_TIMEOUT,
        )
        # The steps failing since they were logged, and whether a hung loop was (each once).
        self._failing: set[str] = set()
        self._hung = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note the loop's turns and start the thread."""
        self.turns.start(loop)
        self._thread = threading.Thread(target=self._run, name="keep-alive", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (blocking: from a thread, or at the very end)."""
        self._stopping.set()
        self.turns.stop()
        if self._thread is not None:
            self._thread.join()
        self._client.close()

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self.interval):
                self.round()
        finally:
            connections.close_all()  # this thread's database connection

    def round(self) -> None:
        """One round on the thread: stamp and heartbeat, unless the loop is hung."""
        silent = self.turns.silent_for()
        if silent > self.hung_after:
            if not self._hung:
                logger.error(
                    "worker %s: its event loop has had no turn for %.0f s (hung); it is no "
                    "longer stamped alive, and its calls will be given up",
                    self.name,
                    silent,
                )
            self._hung = True
            return
        if self._hung:
            logger.warning("worker %s: its event loop turns again; stamped alive", self.name)
            self._hung = False
        self._attempt("stamp", self._stamp)
        self._attempt("row heartbeat", self.liveness.heartbeat_if_late)

    def _stamp(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self.stamp_key, b"1", px=int(self.ttl * 1000))
        pipe.sadd(self.workers_key, self.name)
        pipe.execute()

    def _attempt(self, what: str, step: Callable[[], None]) -> None:
        """Run one step of a round; a failure is logged once until the step succeeds again."""
        try:
            step()
        except Exception:
            if what not in self._failing:
                logger.warning("worker %s: keep-alive %s failed", self.name, what, exc_info=True)
            self._failing.add(what)
            if what == "row heartbeat":
                connections.close_all()  # a failed database connection: a fresh one next round
            return
        if what in self._failing:
            logger.info("worker %s: its keep-alive %s succeeds again", self.name, what)
            self._failing.discard(what)
