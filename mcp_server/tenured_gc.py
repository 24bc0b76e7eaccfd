"""Python's cyclic garbage collector with a tenured tier, for a process that holds thousands
of long-lived connections.

CPython walks every tracked object of the heap in each full (generation 2) collection, and
runs one whenever the objects that survived the younger generations reach a quarter of those
that survived the last full one. A web process of 10,000 idle connections holds over a million
such objects, so each full collection stops the event loop for 0.3-0.6 s, and a reconnect
storm triggers about ten of them (docs/BENCHMARKS.md, "Connection storms").

`TenuredCollector` freezes (`gc.freeze()`) whatever survives a full collection: the next full
collections walk only what was made since. Tenured objects that later become cyclic garbage
(mostly the connections that closed since) are freed by a collection of the whole heap, run on
the event loop once the heap has grown `growth` times since the last one (in pymalloc blocks,
`sys.getallocatedblocks()`: it walks pools, where counting the tenured objects walks each of
them, 10-30 ms at a million, in every full collection's pause), or once more connections have
closed since than `closed` and than half of those open then.
"""

import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# Of the connections open at the last whole-heap collection, the share that must have closed
# since before the next one: what they left in cycles is then at most about half of the heap.
CLOSED_SHARE = 0.5
# Full collections (once so many younger ones ran) while tenuring: CPython's 10 lets ~70,000
# objects pile up between two in a storm, 30-70 ms to walk; each walks only what is untenured.
FULL_EVERY = 3


class TenuredCollector:
    """Freezes the survivors of every full collection; thaws them when enough may be garbage.

    `connections` counts the open connections, `closed` those closed since the process began.
    """

    def __init__(
        self,
        *,
        growth: float,
        closed: int,
        connections: Callable[[], int],
        closed_total: Callable[[], int],
    ) -> None:
        if growth <= 1:
            raise ValueError(f"growth must be above 1, not {growth}")
        if closed < 1:
            raise ValueError(f"closed must be at least 1, not {closed}")
        self.growth, self.closed = growth, closed
        self._connections, self._closed_total = connections, closed_total
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed = False
        self._thresholds = gc.get_threshold()
        self._due = False
        self._blocks_after_full = 0
        self._closed_at_full = 0
        self._open_at_full = 0
        self.thaws = 0  # whole-heap collections brought on since install

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Collect and tenure the heap as it is (the application loaded), then keep tenuring;
        whole-heap collections run on `loop`."""
        if self._installed:
            return
        self._loop, self._installed = loop, True
        self._collect_whole_heap()
        self._thresholds = gc.get_threshold()
        gc.set_threshold(self._thresholds[0], self._thresholds[1], FULL_EVERY)
        gc.callbacks.append(self._collected)

    def uninstall(self) -> None:
        """Stop tenuring and give every tenured object back to the collector."""
        if not self._installed:
            return
        gc.callbacks.remove(self._collected)
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()
        self._installed = False

    @property
    def thaw_due(self) -> bool:
        """Whether enough of the tenured heap may be garbage to walk all of it again."""
        if sys.getallocatedblocks() >= self.growth * self._blocks_after_full:
            return True
        closed = self._closed_total() - self._closed_at_full
        return closed >= max(self.closed, CLOSED_SHARE * self._open_at_full)

    def _collect_whole_heap(self) -> None:
        if not self._installed:
            return  # uninstalled since it was scheduled
        self._due = True  # what the collections below tenure brings on no other
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        # CPython runs the next full collection once a quarter as many objects as survived
        # this one are pending: the whole heap. Collecting again with all of it tenured makes
        # that "none", so full collections stay as small as the young survivors they walk.
        gc.collect()
        self._blocks_after_full = sys.getallocatedblocks()
        self._closed_at_full = self._closed_total()
        self._open_at_full = self._connections()
        self._due = False

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        # Called by the collector in whichever thread allocated, holding the GIL, with
        # collections off until it returns: freezing here is one list splice, and the
        # whole-heap collection is left to the event loop, between two of its callbacks.
        if phase != "stop" or info["generation"] != 2:
            return
        gc.freeze()
        if not self._due and self.thaw_due:
            self._due = True
            self.thaws += 1
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._collect_whole_heap)
