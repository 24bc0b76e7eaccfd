"""TaskOwner: what close cancels, what it waits for, and what may still start meanwhile."""

import asyncio

import pytest

from mcp_server.owned_tasks import OwnerClosed, TaskOwner


async def test_a_request_cancelled_by_close_may_still_start_its_kept_cancel() -> None:
    owner = TaskOwner()
    remote_cancel_sent = asyncio.Event()

    async def send_remote_cancel() -> None:
        await asyncio.sleep(0)
        remote_cancel_sent.set()

    async def call_run_elsewhere() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            owner.keep(send_remote_cancel())  # as ClusteredExecutor.call does
            raise

    owner.spawn(call_run_elsewhere())
    await asyncio.sleep(0)
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
    await asyncio.sleep(0)
    await owner.close()
    with pytest.raises(OwnerClosed):
        owner.keep(asyncio.sleep(0))
