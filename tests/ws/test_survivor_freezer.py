"""SurvivorFreezer: what survives a full collection is frozen while connections hold or grow,
and everything is given back to the collector (cyclic garbage among it freed) once they fall."""

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


def test_a_full_collection_freezes_its_survivors(freezer: SurvivorFreezer) -> None:
    survivor = Node()
    assert tracked(survivor)
    gc.collect()
    assert not tracked(survivor)
    assert freezer.freezes == 1
    made_since = Node()
    assert tracked(made_since)
    gc.collect(1)  # younger collections freeze nothing
    assert tracked(made_since)
    assert freezer.freezes == 1


def test_frozen_cycles_are_freed_once_connections_fall_below_the_share(
    freezer: SurvivorFreezer, connections: Open
) -> None:
    first, second = Node(), Node()
    first.partner, second.partner = second, first
    gone = weakref.ref(first)
    gc.collect()
    assert freezer.open_at_freeze == 100
    del first, second  # cyclic garbage now, but frozen
    connections.count = 60  # above half of 100: still frozen
    gc.collect()
    assert gone() is not None
    assert freezer.thaws == 0
    connections.count = 49
    gc.collect()  # thaws
    assert freezer.thaws == 1
    assert freezer.open_at_freeze == 49
    gc.collect()  # walks everything, the cycle among it
    assert gone() is None


def test_the_share_is_of_the_most_connections_open_at_a_freeze(
    freezer: SurvivorFreezer, connections: Open
) -> None:
    connections.count = 1_000
    gc.collect()
    connections.count = 600
    gc.collect()
    assert freezer.open_at_freeze == 1_000
    assert freezer.thaws == 0
    connections.count = 499
    gc.collect()
    assert freezer.thaws == 1


def test_uninstall_gives_everything_back() -> None:
    with explicit_collections_only():
        thresholds = gc.get_threshold()
        freezer = SurvivorFreezer(connections=Open(1))
        freezer.install()
        assert gc.get_threshold() == (thresholds[0], thresholds[1], FULL_EVERY)
        survivor = Node()
        gc.collect()
        assert not tracked(survivor)
        freezer.uninstall()
        assert tracked(survivor)
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds
        gc.collect()
        assert freezer.freezes == 1


@pytest.mark.parametrize("share", [0, -0.5, 1.5])
def test_refuses_a_share_outside_zero_to_one(share: float) -> None:
    with pytest.raises(ValueError, match="thaw_share"):
        SurvivorFreezer(connections=Open(1), thaw_share=share)
