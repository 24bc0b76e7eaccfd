"""TaskOwner: what close cancels, what it waits for, and what may still start meanwhile."""

import asyncio
import gc
from typing import Any

import pytest

from mcp_server.owned_tasks import OwnerClosed, TaskOwner
from tests.support import yield_to_other_tasks


async def _fail() -> None:
    raise ValueError("the request failed")


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_close_cancels_running_work_and_refuses_more() -> None:
    owner = TaskOwner()
    task = owner.spawn(_forever())
    await yield_to_other_tasks()
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
    await yield_to_other_tasks()  # the task ran and failed; its done callback is queued behind us
    assert task.done() and owner.running == [task]
    turned = asyncio.Event()
    loop.call_soon(turned.set)
    await owner.close()
    assert not turned.is_set()  # closed without yielding to the loop
    del task
    gc.collect()
    await yield_to_other_tasks()
    assert owner.running == []
    assert not [c for c in reported if "never retrieved" in str(c.get("message"))]


async def test_a_request_cancelled_by_close_may_still_start_its_kept_cancel() -> None:
    owner = TaskOwner()
    remote_cancel_sent = asyncio.Event()

    async def send_remote_cancel() -> None:
        await yield_to_other_tasks()
        remote_cancel_sent.set()

    async def call_run_elsewhere() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            owner.keep(send_remote_cancel())  # as ClusteredExecutor.call does
            raise

    owner.spawn(call_run_elsewhere())
    await yield_to_other_tasks()
    await owner.close()
    assert remote_cancel_sent.is_set()


async def test_nothing_is_spawned_once_close_began_nor_kept_once_it_ended() -> None:
    owner = TaskOwner()
    spawned_late = asyncio.Event()

    async def spawn_during_close() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            with pytest.raises(OwnerClosed):
                owner.spawn(spawned_late.wait())
            raise

    owner.spawn(spawn_during_close())
    await yield_to_other_tasks()
    await owner.close()
    with pytest.raises(OwnerClosed):
        owner.keep(asyncio.sleep(0))
