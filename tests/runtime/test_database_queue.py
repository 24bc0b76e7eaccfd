"""The fair queue in front of the cluster's database threads: a connection holds at most a
few of them, and another tenant's query runs while it floods."""

import asyncio
import threading

from mcp_server.cluster.database import DATABASE_SHARES, database_queue, db_call
from mcp_server.runtime.limits import SlotKey
from tests.support import wait_until

FLOOD = 20
TIMEOUT = 30.0


class BlockingQuery:
    """A stand-in for a slow query: blocks its database thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.started += 1
        if not self.release.wait(TIMEOUT):
            raise TimeoutError("never released")
        return "flood"


async def test_a_flooding_connection_holds_few_threads_and_another_tenant_is_served() -> None:
    query = BlockingQuery()
    flooder = SlotKey("tenant-a", "user-a", "connection-a")
    flood = [asyncio.create_task(db_call(query, caller=flooder)()) for _ in range(FLOOD)]
    try:
        await wait_until(lambda: query.started == DATABASE_SHARES.per_connection, TIMEOUT)
        assert database_queue().waiting == FLOOD - DATABASE_SHARES.per_connection

        other = SlotKey("tenant-b", "user-b", "connection-b")
        answer = await asyncio.wait_for(db_call(lambda: "other", caller=other)(), TIMEOUT)
        assert answer == "other"
        # The flood is still waiting behind itself: only its own share ever started.
        assert query.started == DATABASE_SHARES.per_connection
        assert not any(task.done() for task in flood)
    finally:
        query.release.set()
    assert await asyncio.wait_for(asyncio.gather(*flood), TIMEOUT) == ["flood"] * FLOOD
    assert query.started == FLOOD
    await wait_until(lambda: database_queue().running == 0, TIMEOUT)


async def test_a_cancelled_call_keeps_its_thread_until_the_query_ends() -> None:
    query = BlockingQuery()
    caller = SlotKey("tenant-c", "user-c", "connection-c")
    task = asyncio.create_task(db_call(query, caller=caller)())
    await wait_until(lambda: query.started == 1, TIMEOUT)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # The thread is still busy with the query: the slot is not handed to anyone else yet.
    assert database_queue().running_for(connection="connection-c") == 1
    query.release.set()
    await wait_until(lambda: database_queue().running == 0, TIMEOUT)
