"""TaskOwner: what closing a session does with the tasks it started."""

import asyncio
import gc
from typing import Any

import pytest

from mcp_server.owned_tasks import OwnerClosed, TaskOwner


async def _fail() -> None:
    raise ValueError("the request failed")


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_close_cancels_running_work_and_refuses_more() -> None:
    owner = TaskOwner()
    task = owner.spawn(_forever())
    await asyncio.sleep(0)
    await owner.close()
    assert task.cancelled() and owner.running == []
    with pytest.raises(OwnerClosed):
        owner.spawn(_forever())


async def test_close_passes_over_a_finished_task_at_once() -> None:
    """A task that has finished but whose done callback has not run yet (a request that
    has just sent its reply when its HTTP exchange closes) costs no turn of the event loop,
    and its exception counts as seen, as gathering it would have made it."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    owner = TaskOwner()
    task = owner.spawn(_fail())
    await asyncio.sleep(0)  # the task ran and failed; its done callback is queued behind us
    assert task.done() and owner.running == [task]
    turned = asyncio.Event()
    loop.call_soon(turned.set)
    await owner.close()
    assert not turned.is_set()  # closed without yielding to the loop
    del task
    gc.collect()
    await asyncio.sleep(0)
    assert owner.running == []
    assert not [c for c in reported if "never retrieved" in str(c.get("message"))]
