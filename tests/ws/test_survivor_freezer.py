"""SurvivorFreezer: what survives a full collection is frozen while connections grow, and
everything is given back to the collector (cyclic garbage among it freed) once they stop."""

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mcp_server.survivor_freezer import FULL_EVERY, SurvivorFreezer


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
    connections.count = 101
    gc.collect()
    assert not tracked(survivor)
    assert freezer.freezes == 1
    made_since = Node()
    assert tracked(made_since)
    gc.collect(1)  # younger collections freeze nothing
    assert tracked(made_since)
    assert freezer.freezes == 1


def test_steady_connections_freeze_nothing(freezer: SurvivorFreezer) -> None:
    survivor = Node()
    gc.collect()
    assert tracked(survivor)
    assert (freezer.freezes, freezer.thaws) == (0, 0)


@pytest.mark.parametrize("settled", [200, 120], ids=["steady", "fallen"])
def test_frozen_cycles_are_freed_once_connections_stop_growing(
    freezer: SurvivorFreezer, connections: Open, settled: int
) -> None:
    first, second = Node(), Node()
    first.partner, second.partner = second, first
    gone = weakref.ref(first)
    connections.count = 150
    gc.collect()
    del first, second  # cyclic garbage now, but frozen
    connections.count = 200  # still growing: still frozen
    gc.collect()
    assert gone() is not None
    assert (freezer.freezes, freezer.thaws) == (2, 0)
    connections.count = settled
    gc.collect()  # thaws
    assert (freezer.thaws, freezer.frozen) == (1, False)
    gc.collect()  # walks everything, the cycle among it
    assert gone() is None
    assert freezer.thaws == 1  # nothing frozen since: nothing to give back


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


def test_uninstall_gives_everything_back() -> None:
    with explicit_collections_only():
        thresholds = gc.get_threshold()
        connections = Open(1)
        freezer = SurvivorFreezer(connections=connections)
        freezer.install()
        assert gc.get_threshold() == (thresholds[0], thresholds[1], FULL_EVERY)
        survivor = Node()
        connections.count = 2
        gc.collect()
        assert not tracked(survivor)
        freezer.uninstall()
        assert tracked(survivor)
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds
        gc.collect()
        assert freezer.freezes == 1
