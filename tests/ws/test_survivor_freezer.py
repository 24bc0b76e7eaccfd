"""SurvivorFreezer: what survives a full collection is frozen while connections grow, and
everything is given back to the collector (cyclic garbage among it freed) once they stop,
then frozen again after one walk; only connections that clients hold open count."""

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from accounts.services import IssuedToken
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.survivor_freezer import FULL_EVERY, STORM_GROWTH, SurvivorFreezer
from tests.support import wait_until
from tests.ws.conftest import TIMEOUT, ws_connect
from tests.ws.test_reference_cycles import HttpClient


class Open:
    """A settable count of open connections."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self) -> int:
        return self.count


class Node:
    """An object that can be put in a reference cycle and watched with a weak reference."""

    partner: "Node | None" = None


def tracked(thing: object) -> bool:
    """Whether the collector walks `thing` (gc.get_objects() leaves the frozen set out)."""
    return any(candidate is thing for candidate in gc.get_objects())


@pytest.fixture
def connections() -> Open:
    return Open(100)


@contextmanager
def explicit_collections_only() -> Iterator[None]:
    """No automatic collection in the block: only the test's own count."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def freezer(connections: Open) -> Iterator[SurvivorFreezer]:
    with explicit_collections_only():
        freezer = SurvivorFreezer(connections=connections)
        freezer.install()
        try:
            yield freezer
        finally:
            freezer.uninstall()


def test_a_full_collection_freezes_its_survivors_while_connections_grow(
    freezer: SurvivorFreezer, connections: Open
) -> None:
    survivor = Node()
    assert tracked(survivor)
    connections.count = 100 + STORM_GROWTH
    gc.collect()
    assert not tracked(survivor)
    assert freezer.freezes == 1
    made_since = Node()
    assert tracked(made_since)
    gc.collect(1)  # younger collections freeze nothing
    assert tracked(made_since)
    assert freezer.freezes == 1


@pytest.mark.parametrize("opened", [0, STORM_GROWTH - 1], ids=["steady", "a trickle"])
def test_connections_short_of_a_storm_freeze_nothing(
    freezer: SurvivorFreezer, connections: Open, opened: int
) -> None:
    survivor = Node()
    connections.count += opened
    gc.collect()
    assert tracked(survivor)
    assert (freezer.freezes, freezer.thaws) == (0, 0)


@pytest.mark.parametrize(
    "settled",
    [100 + 2 * STORM_GROWTH, 100 + 3 * STORM_GROWTH - 1, 120],
    ids=["steady", "trickle", "fallen"],
)
def test_frozen_cycles_are_freed_once_connections_stop_growing(
    freezer: SurvivorFreezer, connections: Open, settled: int
) -> None:
    first, second = Node(), Node()
    first.partner, second.partner = second, first
    gone = weakref.ref(first)
    connections.count = 100 + STORM_GROWTH
    gc.collect()
    del first, second  # cyclic garbage now, but frozen
    connections.count = 100 + 2 * STORM_GROWTH  # still growing: still frozen
    gc.collect()
    assert gone() is not None
    assert (freezer.freezes, freezer.thaws) == (2, 0)
    connections.count = settled
    gc.collect()  # thaws
    assert (freezer.thaws, freezer.frozen) == (1, False)
    gc.collect()  # walks everything, the cycle among it, and refreezes what survived
    assert gone() is None
    assert (freezer.thaws, freezer.refreezes) == (1, 1)
    gc.collect()
    assert freezer.thaws == 1  # nothing frozen since by the freezer: nothing to give back


def test_steady_connections_leave_the_start_up_freeze_as_it_is(connections: Open) -> None:
    with explicit_collections_only():
        start_up = Node()
        gc.freeze()
        try:
            freezer = SurvivorFreezer(connections=connections)
            freezer.install()
            gc.collect()  # steady: neither freezes nor thaws
            assert not tracked(start_up)
            assert (freezer.freezes, freezer.thaws) == (0, 0)
            freezer.uninstall()
        finally:
            gc.unfreeze()


def test_after_a_thaw_the_start_up_heap_is_walked_once_then_frozen_again(
    connections: Open,
) -> None:
    with explicit_collections_only():
        start_up = Node()
        gc.freeze()
        freezer = SurvivorFreezer(connections=connections)
        freezer.install()
        try:
            connections.count = 100 + STORM_GROWTH
            gc.collect()  # grew: the survivors frozen on top
            gc.collect()  # steady: CPython thaws the whole frozen set, start-up heap too
            assert freezer.thaws == 1
            assert tracked(start_up)
            gc.collect()  # the one walk of it all, then its survivors frozen again
            assert not tracked(start_up)
            assert freezer.refreezes == 1
            made_since = Node()
            gc.collect()  # steady again: a full collection walks only what is new
            assert tracked(made_since)
            assert not tracked(start_up)
            assert (freezer.freezes, freezer.thaws, freezer.refreezes) == (1, 1, 1)
        finally:
            freezer.uninstall()
            gc.unfreeze()


def test_uninstall_gives_everything_back() -> None:
    with explicit_collections_only():
        thresholds = gc.get_threshold()
        connections = Open(1)
        freezer = SurvivorFreezer(connections=connections)
        freezer.install()
        assert gc.get_threshold() == (thresholds[0], thresholds[1], FULL_EVERY)
        survivor = Node()
        connections.count = 1 + STORM_GROWTH
        gc.collect()
        assert not tracked(survivor)
        freezer.uninstall()
        assert tracked(survivor)
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds
        gc.collect()
        assert freezer.freezes == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("history")
async def test_only_connections_clients_hold_open_count_for_the_freezer(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    registry = runtime.connections
    register = registry.register
    counted: list[tuple[int, int]] = []  # (open, lasting) as each connection registered

    def counting(connection: Any, **kinds: bool) -> None:
        register(connection, **kinds)
        counted.append((len(registry), registry.lasting()))

    registry.register = counting  # type: ignore[method-assign]
    client = HttpClient(runtime, issued.raw)
    await client.initialize()
    await client.requests_of_each_kind(1)
    # Each request's exchange was open while it ran, and none counted as held open.
    assert counted and all(opened >= 1 and lasting == 0 for opened, lasting in counted)
    async with ws_connect(runtime, f"/mcp?token={issued.raw}", subprotocols=["mcp"]) as (
        socket,
        (accepted, _),
    ):
        assert accepted
        await socket.initialize()
        assert registry.lasting() == 1
    await wait_until(lambda: registry.lasting() == 0, TIMEOUT, "the session to unregister")
