"""The cluster's database calls: off the event loop, on a few threads of their own."""

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import InterfaceError, OperationalError, connections

# The cluster's reads and writes run on threads of their own, beside the one sync thread that
# authentication uses, so a slow query never holds up handshakes.
_DB_THREADS = 4
_db_pool = ThreadPoolExecutor(max_workers=_DB_THREADS, thread_name_prefix="cluster-db")


def db_call(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`fn` run off the event loop on a cluster database thread.

    The thread keeps its connection (no health-check round trip per call, which cost a
    quarter of a worker-mode call's database time); a connection that failed is dropped, so
    the next call opens a fresh one (the database may have restarted).
    """

    def run(kwargs: dict[str, Any]) -> Any:
        try:
            return fn(**kwargs)
        except (InterfaceError, OperationalError):
            connections.close_all()
            raise

    async def call(**kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(_db_pool, run, kwargs)

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
