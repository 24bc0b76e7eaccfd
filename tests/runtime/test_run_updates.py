"""RunUpdates: a watched run's history writes become coalesced `resource.updated` messages on
the watcher's channel, its end at once and last; unwatched runs send nothing."""

import asyncio
from uuid import UUID, uuid4

from channels.layers import InMemoryChannelLayer

from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.run_updates import RunUpdates
from mcp_server.cluster.session_messages import RunUnwatch, RunUpdated, RunWatch

TIMEOUT = 5


class RunsHere:
    """A runner stand-in: every run asked about runs in this process."""

    def is_running(self, operation_id: UUID) -> bool:
        return True


async def _next(layer: InMemoryChannelLayer, channel: str) -> RunUpdated:
    message = decode_message(await asyncio.wait_for(layer.receive(channel), TIMEOUT))
    assert isinstance(message, RunUpdated)
    return message


async def test_a_thousand_writes_become_one_update_now_and_one_with_the_end() -> None:
    layer = InMemoryChannelLayer()
    # An interval no test outlasts: everything after the first update waits for the end.
    updates = RunUpdates(runner=RunsHere(), layer=layer, interval=3600)  # type: ignore[arg-type]
    updates.start()
    run, other = uuid4(), uuid4()
    channel = await layer.new_channel()
    await updates.handle(RunWatch(id=run, channel=channel))
    for n in range(1000):
        errors = frozenset({run}) if n == 500 else frozenset()
        updates.written(frozenset({run, other}), errors, frozenset())
    first = await _next(layer, channel)
    assert (first.id, first.errors, first.ended) == (run, False, False)
    updates.written(frozenset({run}), frozenset(), frozenset({run}))
    end = await _next(layer, channel)
    assert (end.errors, end.ended) == (True, True)  # the errors of write 500 kept
    assert updates.watched == frozenset()


async def test_a_change_within_the_interval_is_sent_when_it_is_over() -> None:
    layer = InMemoryChannelLayer()
    updates = RunUpdates(runner=RunsHere(), layer=layer, interval=0.05)  # type: ignore[arg-type]
    updates.start()
    run = uuid4()
    channel = await layer.new_channel()
    await updates.handle(RunWatch(id=run, channel=channel))
    updates.written(frozenset({run}), frozenset(), frozenset())
    updates.written(frozenset({run}), frozenset({run}), frozenset())
    assert not (await _next(layer, channel)).errors
    later = await _next(layer, channel)
    assert (later.errors, later.ended) == (True, False)


async def test_unwatching_stops_the_updates_and_a_pending_watch_waits_for_the_first_write() -> None:
    layer = InMemoryChannelLayer()

    class NotHere(RunsHere):
        def is_running(self, operation_id: UUID) -> bool:
            return False

    updates = RunUpdates(runner=NotHere(), layer=layer, interval=0.05)  # type: ignore[arg-type]
    updates.start()
    run = uuid4()
    channel = await layer.new_channel()
    await updates.handle(RunWatch(id=run, channel=channel))
    assert updates.watched == {run}  # pending: the run may be on its way here
    updates.written(frozenset({run}), frozenset(), frozenset())
    assert not (await _next(layer, channel)).ended
    await updates.handle(RunUnwatch(id=run, channel=channel))
    assert updates.watched == frozenset()
