"""The tenured garbage collector of `manage.py serve` (mcp_server/tenured_gc.py): what survives a
full collection is skipped by the next ones, and tenured garbage is freed by a whole-heap
collection once enough of it may have died."""

import asyncio
import gc
import os
import subprocess
import sys
import weakref
from collections.abc import AsyncIterator

import pytest

from mcp_server.tenured_gc import FULL_EVERY, TenuredCollector


class Node:
    """An object in a reference cycle (only the cyclic collector frees it)."""

    def __init__(self) -> None:
        self.me = self


class Counts:
    """The connection counts the collector reads."""

    def __init__(self) -> None:
        self.open = 0
        self.closed = 0


@pytest.fixture
def counts() -> Counts:
    return Counts()


@pytest.fixture
async def collector(counts: Counts) -> AsyncIterator[TenuredCollector]:
    made = TenuredCollector(
        growth=100.0,
        closed=10,
        connections=lambda: counts.open,
        closed_total=lambda: counts.closed,
    )
    made.install(asyncio.get_running_loop())
    try:
        yield made
    finally:
        made.uninstall()


def _tenured_garbage() -> "weakref.ref[Node]":
    """A cycle that survives a full collection (so it is tenured), then becomes garbage."""
    node = Node()
    gc.collect()
    return weakref.ref(node)


async def _next_turns() -> None:
    """Let the event loop run what was scheduled (the whole-heap collection)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_install_tenures_the_heap_and_uninstall_gives_it_back(
    collector: TenuredCollector,
) -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[2] == FULL_EVERY
    collector.uninstall()
    assert gc.get_freeze_count() == 0
    assert collector._collected not in gc.callbacks
    assert gc.get_threshold()[2] == 10


async def test_a_full_collection_tenures_its_survivors(collector: TenuredCollector) -> None:
    before = gc.get_freeze_count()
    survivors = [Node() for _ in range(100)]
    gc.collect()
    assert gc.get_freeze_count() >= before + len(survivors)
    assert not any(node in gc.get_objects(generation=2) for node in survivors[:1])


async def test_tenured_garbage_waits_for_the_closed_connections(
    collector: TenuredCollector, counts: Counts
) -> None:
    dead = _tenured_garbage()
    gc.collect()
    await _next_turns()
    assert dead() is not None, "a tenured cycle is not walked by a young full collection"

    counts.closed += 9
    gc.collect()
    await _next_turns()
    assert dead() is not None and collector.thaws == 0

    counts.closed += 1  # `closed` (10) have closed since the last whole-heap collection
    gc.collect()
    await _next_turns()
    assert dead() is None
    assert collector.thaws == 1 and gc.get_freeze_count() > 0


async def test_half_of_the_connections_open_then_must_close(
    counts: Counts, collector: TenuredCollector
) -> None:
    counts.open = 100
    counts.closed += 10
    gc.collect()
    await _next_turns()  # a whole-heap collection: 10 closed, with 0 open at the last one
    assert collector.thaws == 1
    dead = _tenured_garbage()
    counts.closed += 49
    gc.collect()
    await _next_turns()
    assert dead() is not None and collector.thaws == 1
    counts.closed += 1  # half of the 100 open at the last whole-heap collection
    gc.collect()
    await _next_turns()
    assert dead() is None and collector.thaws == 2


async def test_heap_growth_brings_on_a_whole_heap_collection(counts: Counts) -> None:
    collector = TenuredCollector(
        growth=1.5, closed=10**9, connections=lambda: 0, closed_total=lambda: 0
    )
    collector.install(asyncio.get_running_loop())
    try:
        dead = _tenured_garbage()
        kept = [Node() for _ in range(sys.getallocatedblocks() // 2 + 100)]
        gc.collect()
        await _next_turns()
        assert dead() is None and collector.thaws == 1
        assert gc.get_freeze_count() >= len(kept)
    finally:
        collector.uninstall()


@pytest.mark.parametrize(("growth", "closed"), [(1.0, 10), (0.5, 10), (2.0, 0)])
def test_refuses_bounds_that_would_never_tenure_or_always_thaw(growth: float, closed: int) -> None:
    with pytest.raises(ValueError):
        TenuredCollector(growth=growth, closed=closed, connections=int, closed_total=int)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MCP_GC_THAW_GROWTH": "1"}, "MCP_GC_THAW_GROWTH must be between 1.1 and 100"),
        ({"MCP_GC_THAW_GROWTH": "101"}, "MCP_GC_THAW_GROWTH must be between 1.1 and 100"),
        ({"MCP_GC_THAW_CLOSED": "0"}, "MCP_GC_THAW_CLOSED must be at least 1"),
    ],
)
def test_settings_refuse_out_of_bounds_values(env: dict[str, str], message: str) -> None:
    started = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert message in started.stderr


def test_settings_defaults() -> None:
    from django.conf import settings

    assert settings.MCP_GC_TENURE is True
    assert settings.MCP_GC_THAW_GROWTH == 4.0
    assert settings.MCP_GC_THAW_CLOSED == 1000
