"""This process's cores for fan-out chunks: a bounded pool of processes in the fair order.

Chunks are CPU-bound (thumbnails) and the event loop must stay responsive, so they run in
`MCP_FANOUT_PROCESSES` spawned processes. A chunk takes a slot of the pool's `FairScheduler`
first, keyed by its call's tenant, user and connection: the next slot goes round robin across
tenants, so one tenant's long call does not hold every core while another's waits. There are
`QUEUED_PER_PROCESS` slots per process: one chunk runs and the next already waits in the
pool's call queue, so a process that ends a chunk starts the next at once instead of idling
until this event loop has seen the end and submitted another (~15 % of a pool process's time
with a chunk of 64 thumbnails, docs/BENCHMARKS.md). Each slot has a stop flag in shared
memory that its chunk's process reads before every item: a cancelled chunk stops at its next
item, and one cancelled while it still waits in the queue runs none.
"""

import asyncio
import importlib
import logging
import multiprocessing
import os
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from django.conf import settings

from mcp_server.runtime.fanout import (
    Chunk,
    ChunkLost,
    ChunkOutcome,
    UnknownChunkFunction,
    chunk_function_named,
    run_items,
    stopped,
)
from mcp_server.runtime.limits import FairScheduler, Limits

logger = logging.getLogger(__name__)

# In a pool process: the stop flags (one per pool slot) and the process that started the pool.
_stop_flags: Any = None
_parent_pid = 0


# Chunks given to the pool per process: the running one, and the next one queued behind it.
QUEUED_PER_PROCESS = 2

# How often an idle pool process checks that the process that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def _start_pool_process(flags: Any, parent_pid: int) -> None:
    """A pool process's start: Django set up (the tools, and so their item functions, load)."""
    global _stop_flags, _parent_pid
    _stop_flags, _parent_pid = flags, parent_pid
    threading.Thread(
        target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True
    ).start()
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        import django

        django.setup()


def _exit_with_parent(parent_pid: int) -> None:
    """End this pool process once the process that started the pool is gone: an idle pool
    process waits for work on a pipe that a parent killed with -9 never closes, so it would
    otherwise stay, holding its memory, for as long as the machine runs."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _resolve(function: str) -> None:
    """Import the module of `function` if nothing declared it yet (a tool app's own module)."""
    try:
        chunk_function_named(function)
    except UnknownChunkFunction:
        importlib.import_module(function.partition(":")[0])


def _run_in_pool(
    slot: int, function: str, items: list[Any], params: dict[str, Any]
) -> ChunkOutcome:
    """Run one chunk in a pool process; it stops early when its flag is set or the process
    that started the pool is gone (a worker killed with -9 leaves no orphan working on)."""
    _resolve(function)

    def stop_requested() -> bool:
        return bool(_stop_flags[slot]) or os.getppid() != _parent_pid

    return run_items(function, items, params, stop_requested)


def _warm_up() -> None:
    """Nothing: submitted once per process so that the pool starts them all."""


class LocalChunks:
    """Runs chunks on this process's cores, `processes` at a time (and as many queued behind
    them), in the fair order."""

    def __init__(self, *, processes: int, name: str) -> None:
        self.processes = processes
        self.name = name
        self.slots = slots = QUEUED_PER_PROCESS * processes
        share = Limits(per_connection=slots, per_user=slots, per_tenant=slots, total=slots)
        self.scheduler = FairScheduler(share)
        self._pool: ProcessPoolExecutor | None = None
        self._flags: SynchronizedArray[Any] | None = None
        self._free = list(range(slots))

    def _started_pool(self) -> tuple[ProcessPoolExecutor, Any]:
        if self._pool is None or self._flags is None:
            context = multiprocessing.get_context("spawn")  # never fork a threaded process
            self._flags = context.Array("b", self.slots, lock=False)
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=context,
                initializer=_start_pool_process,
                initargs=(self._flags, os.getpid()),
            )
        return self._pool, self._flags

    async def warm(self) -> None:
        """Start the pool's processes now and wait until they run (a worker, before it takes
        chunks), rather than with the first chunk: each takes a Django start-up."""
        pool, _ = self._started_pool()
        started = [asyncio.wrap_future(pool.submit(_warm_up)) for _ in range(self.processes)]
        await asyncio.gather(*started)

    async def run(self, chunk: Chunk) -> ChunkOutcome:
        """Run `chunk` in a pool process once its turn comes; cancelling the await stops it
        (waiting for a slot: never started; queued or running: at its next item, which this
        waits for)."""
        async with self.scheduler.slot(chunk.key):
            pool, flags = self._started_pool()
            slot = self._free.pop()
            flags[slot] = 0
            try:
                # A broken pool refuses the submission itself: the slot comes back all the same.
                work = asyncio.get_running_loop().run_in_executor(
                    pool, _run_in_pool, slot, chunk.function, chunk.items, chunk.params
                )
                try:
                    outcome = await asyncio.shield(work)
                except asyncio.CancelledError:
                    flags[slot] = 1
                    # However often cancelled meanwhile (a worker's round cancels its call
                    # again): the slot and its flag stay this chunk's until its process is done.
                    await stopped([work])
                    raise
            except BrokenProcessPool:
                # A pool process died (killed, or a crash in a decoder): a new pool next time.
                self._discard_pool()
                why = f"was lost: a pool process of {self.name} died"
                raise ChunkLost(self.name, why=why) from None
            finally:
                self._free.append(slot)
        outcome.runner = self.name
        return outcome

    def _discard_pool(self) -> None:
        pool, self._pool, self._flags = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop the pool's processes (at the end of the process; running chunks finish)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_local: LocalChunks | None = None


def local_chunks() -> LocalChunks:
    """This process's pool (MCP_FANOUT_PROCESSES processes; 0: one per core), made on first use."""
    global _local
    if _local is None:
        processes = settings.MCP_FANOUT_PROCESSES or os.cpu_count() or 1
        _local = LocalChunks(processes=processes, name=f"{socket.gethostname()}:{os.getpid()}")
    return _local
