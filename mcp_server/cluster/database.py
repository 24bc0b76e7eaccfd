"""The cluster's database calls: off the event loop, on a few threads of their own, shared
fairly.

A fair queue sits in front of the threads: each call says on whose behalf it runs (a tenant,
user and connection, or the process itself), and the threads are granted round robin across
tenants, then users, then connections, with at most a few at once for any one of them. A
connection sending thousands of database-bound requests queues behind itself, not in front of
every other tenant.
"""

import asyncio
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import InterfaceError, OperationalError, connections

from mcp_server.runtime.limits import FairScheduler, Limits, SlotKey

# The cluster's reads and writes run on threads of their own, beside the one sync thread that
# authentication uses, so a slow query never holds up handshakes.
_DB_THREADS = 4
_db_pool = ThreadPoolExecutor(max_workers=_DB_THREADS, thread_name_prefix="cluster-db")
# Threads one connection, user or tenant may hold at once: one is always left for the others.
DATABASE_SHARES = Limits(per_connection=2, per_user=3, per_tenant=3, total=_DB_THREADS)
# The process's own work (heartbeats, the reaper, recovery) is a caller of its own.
PROCESS = SlotKey(tenant=None, user=None, connection=None)

_queues: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FairScheduler]" = (
    weakref.WeakKeyDictionary()
)


def database_queue() -> FairScheduler:
    """The fair queue in front of the database threads, for the running event loop."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = FairScheduler(DATABASE_SHARES)
    return queue


def _give_back(
    loop: asyncio.AbstractEventLoop, queue: FairScheduler, caller: SlotKey, _: futures.Future[Any]
) -> None:
    # On the database thread: the slot is given back on the loop, once the query is over.
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(queue.release, caller)


def db_call(
    fn: Callable[..., Any], *, caller: SlotKey = PROCESS
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """`fn` run off the event loop on a cluster database thread, on behalf of `caller`.

    The thread keeps its connection (no health-check round trip per call, which cost a
    quarter of a worker-mode call's database time); a connection that failed is dropped, so
    the next call opens a fresh one (the database may have restarted). The caller's slot is
    held until the query is over, even when the awaiting task is cancelled meanwhile.
    """

    def run(kwargs: dict[str, Any]) -> Any:
        try:
            return fn(**kwargs)
        except (InterfaceError, OperationalError):
            connections.close_all()
            raise

    async def call(**kwargs: Any) -> Any:
        queue = database_queue()
        await queue.acquire(caller)
        try:
            job = _db_pool.submit(run, kwargs)
        except BaseException:
            queue.release(caller)
            raise
        later = False
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            if not job.done():  # still running on its thread: the slot is held until it ends
                loop = asyncio.get_running_loop()
                job.add_done_callback(functools.partial(_give_back, loop, queue, caller))
                later = True
            raise
        finally:
            if not later:
                queue.release(caller)

    return call


def close_database_connections() -> None:
    """Close the database connections of every cluster database thread (tests, shutdown)."""
    barrier = threading.Barrier(_DB_THREADS)

    def close() -> None:
        connections.close_all()
        # Every job waits for the others, so each thread of the pool takes exactly one.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=10)

    futures.wait([_db_pool.submit(close) for _ in range(_DB_THREADS)])
