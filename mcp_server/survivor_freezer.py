"""Keep what survived a full garbage collection out of the next ones while connections pile up.

CPython's full (generation 2) collection walks every tracked object outside the frozen set, and
runs whenever a quarter as many objects as survived the last one have survived the younger
generations since. During a reconnect storm every open connection (~90 tracked objects) is in
that walk, so the collections' pauses grow with the storm (0.2-0.6 s at 5,000 connections:
docs/BENCHMARKS.md, issue 17). Freezing the survivors of each full collection while the
connections grow leaves the next one only what was made since.

The risk of freezing: a frozen object that later becomes cyclic garbage is not collected while
it stays frozen. Closed connections are freed by reference counting (no cycles:
tests/ws/test_reference_cycles.py), so little is at stake, and it lasts only while the storm
does: the first full collection that finds no more connections open than the one before gives
everything back to the collector, and the next one walks, and frees, all of it, then freezes
what survived that walk again. CPython can only thaw all of the frozen set at once, the
start-up heap that `serve` froze included; refrozen, it stays out of the full collections
after the storm as before it, so a storm costs one walk of the whole heap when it ends, not
one at every full collection from then on. What is frozen after the storm is the settled
heap, as the start-up freeze was.

Only connections that clients hold open count (WebSocket sessions, GET and listen streams:
`ConnectionRegistry.lasting`): the exchanges of HTTP requests in flight rise and fall with
every request, and counting them froze and thawed by turns under steady HTTP load, each thaw
followed by a ~70 ms walk of the start-up heap that was the HTTP p99 (docs/BENCHMARKS.md).

Connections "grow" when a full collection finds at least `STORM_GROWTH` more open than the
one before: a storm, not the trickle of clients a server always has. Counting every new
connection froze at each one and thawed at the next collection without one, and each thaw
costs a walk of the whole heap (~70-90 ms here).

While installed, a full collection runs every `FULL_EVERY` younger ones (CPython: 10), as soon
as enough is pending: each walks only what is unfrozen, so more of them, each shorter, cost
the same CPU (8-22 ms each instead of 40-58 ms in a 5,000 storm, docs/BENCHMARKS.md).
"""

import gc
from collections.abc import Callable
from typing import Any

FULL_EVERY = 3
# Connections opened between two full collections (a few hundred ms apart under load) that make
# a storm: a 10,000 storm opens ~1,500 a second (docs/BENCHMARKS.md, issue 17).
STORM_GROWTH = 64


def freeze_start_up_heap() -> None:
    """Exempt what exists now (Django, the application, its modules: what lives as long as the
    process) from the cyclic garbage collector: a full collection then walks only what was made
    since. A storm of 10,000 reconnecting clients triggers about ten, and freezing cut their
    pauses by a fifth (docs/BENCHMARKS.md, issue 17); a worker's calls trigger one every few
    seconds."""
    gc.collect()
    gc.freeze()


class SurvivorFreezer:
    """Freezes the heap after each full collection while connections grow, thaws it once
    they stop."""

    def __init__(self, *, connections: Callable[[], int]) -> None:
        self._connections = connections
        self.open_at_last_full = 0  # connections open at the last full collection
        self.frozen = False  # whether this freezer froze anything not yet given back
        self.freezes = 0
        self.thaws = 0
        # Whether the next full collection's survivors are frozen again (after a thaw).
        self.refreeze_due = False
        self.refreezes = 0
        self._thresholds = gc.get_threshold()

    def install(self) -> None:
        """Follow full collections from now on (the start-up heap frozen or not, as it is)."""
        if self._collected not in gc.callbacks:
            self.open_at_last_full = self._connections()
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
            self.frozen = False
            self.refreeze_due = False

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        # The collector calls this holding the GIL, collections off until it returns, in
        # whichever thread allocated: freezing and thawing are one list splice each.
        if phase != "stop" or info["generation"] != 2:
            return
        open_now = self._connections()
        grew = open_now - self.open_at_last_full >= STORM_GROWTH
        self.open_at_last_full = open_now
        if self.refreeze_due:
            # The walk after a thaw has freed what the storm left: its survivors are the
            # settled heap again (the start-up heap among them), frozen as at start-up.
            gc.freeze()
            self.refreeze_due = False
            self.refreezes += 1
            if grew:  # a new storm begins: what it adds from now on is this freezer's
                self.frozen = True
                self.freezes += 1
        elif grew:
            gc.freeze()
            self.frozen = True
            self.freezes += 1
        elif self.frozen:
            gc.unfreeze()
            self.frozen = False
            self.thaws += 1
            self.refreeze_due = True
