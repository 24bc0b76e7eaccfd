"""The single-process event store: bounded per stream, expired streams swept in touch order."""

from mcp_server.http_transport.events import MemoryEventStore, StreamCursor


async def test_events_after_a_cursor_are_replayed_oldest_first_and_bounded_per_stream() -> None:
    store = MemoryEventStore(per_stream=3, retention_seconds=60)
    ids = [await store.append("s", "a", b"%d" % n, final=n == 4) for n in range(5)]
    stream, entry = ids[1].split("/")
    replay = await store.after("s", StreamCursor(stream, entry))
    assert replay is not None
    assert [event.data for event in replay] == [b"2", b"3", b"4"]
    assert replay[-1].final


async def test_an_expired_stream_is_gone_and_a_touched_one_stays() -> None:
    clock = [1000.0]
    store = MemoryEventStore(per_stream=10, retention_seconds=5, clock=lambda: clock[0])
    first = (await store.append("s", "old", b"x", final=False)).split("/")
    kept = (await store.append("s", "kept", b"y", final=False)).split("/")
    clock[0] += 4
    await store.append("s", "old", b"z", final=False)  # touched: its expiry moves on
    clock[0] += 2  # "kept" was last touched 6 s ago, "old" 2 s ago
    assert await store.after("s", StreamCursor(*kept)) is None
    replay = await store.after("s", StreamCursor(*first))
    assert replay is not None
    assert [event.data for event in replay] == [b"z"]
