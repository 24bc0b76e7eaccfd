"""Keep what survived a full garbage collection out of the next ones while connections pile up.

CPython's full (generation 2) collection walks every tracked object outside the frozen set, and
runs whenever a quarter as many objects as survived the last one have survived the younger
generations since. During a reconnect storm every open connection (~90 tracked objects) is in
that walk, so the collections' pauses grow with the storm (0.2-0.6 s at 5,000 connections:
docs/BENCHMARKS.md, issue 17). Freezing the survivors of each full collection while the
connections grow leaves the next one only what was made since.

The risk of freezing: a frozen object that later becomes cyclic garbage is not collected while
it stays frozen. Closed connections are freed by reference counting (no cycles:
tests/ws/test_reference_cycles.py), so little is at stake, and all is given back to the
collector once the open connections fall to less than `thaw_share` of those open at the last
freeze: the next full collection then walks, and frees, everything.

While installed, a full collection runs every `FULL_EVERY` younger ones (CPython: 10), as soon
as enough is pending: each walks only what is unfrozen, so more of them, each shorter, cost
the same CPU (8-22 ms each instead of 40-58 ms in a 5,000 storm, docs/BENCHMARKS.md).
"""

import gc
from collections.abc import Callable
from typing import Any

FULL_EVERY = 3


class SurvivorFreezer:
    """Freezes the heap after each full collection unless the connections have fallen."""

    def __init__(self, *, connections: Callable[[], int], thaw_share: float = 0.5) -> None:
        if not 0 < thaw_share <= 1:
            raise ValueError(f"thaw_share must be in (0, 1], not {thaw_share}")
        self._connections = connections
        self.thaw_share = thaw_share
        self.open_at_freeze = 0  # connections open when the heap was last frozen
        self.freezes = 0
        self.thaws = 0
        self._thresholds = gc.get_threshold()

    def install(self) -> None:
        """Follow full collections from now on (the start-up heap frozen or not, as it is)."""
        if self._collected not in gc.callbacks:
            self.open_at_freeze = self._connections()
            self._thresholds = gc.get_threshold()
            gc.set_threshold(self._thresholds[0], self._thresholds[1], FULL_EVERY)
            gc.callbacks.append(self._collected)

    def uninstall(self) -> None:
        """Stop following collections, restore the thresholds and give every frozen object
        back to the collector."""
        if self._collected in gc.callbacks:
            gc.callbacks.remove(self._collected)
            gc.set_threshold(*self._thresholds)
            gc.unfreeze()

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        # The collector calls this holding the GIL, collections off until it returns, in
        # whichever thread allocated: freezing and thawing are one list splice each.
        if phase != "stop" or info["generation"] != 2:
            return
        open_now = self._connections()
        if open_now < self.thaw_share * self.open_at_freeze:
            gc.unfreeze()
            self.open_at_freeze = open_now
            self.thaws += 1
            return
        gc.freeze()
        self.open_at_freeze = max(self.open_at_freeze, open_now)
        self.freezes += 1
