"""Tasks owned by one session: none outlives it by accident.

`spawn` starts work the owner cancels at close (requests in flight); `keep` starts work it
waits for at close without cancelling it (a batch's reply, the cancel of a call run
elsewhere); `run_here` runs work as `spawn` would, but in the calling task (a short call in
an HTTP request's own task: no task to make, schedule and wait for). Once close begins
nothing more is spawned; kept work may still start until close ends (a request cancelled by
the close starts the cancel of its call on a worker).
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class OwnerClosed(RuntimeError):
    """Work was started on an owner that has closed."""


class TaskOwner:
    """Starts tasks and, at close, cancels or awaits every one of them."""

    __slots__ = ("_cancellable", "_closed", "_ended", "_here", "_kept")

    def __init__(self) -> None:
        self._cancellable: set[asyncio.Task[Any]] = set()
        self._kept: set[asyncio.Task[Any]] = set()
        # The calling tasks of the runs `run_here` has going, each with the future a close
        # waits on for its end (made only by a close: most runs end without one).
        self._here: dict[asyncio.Task[Any], asyncio.Future[None] | None] = {}
        self._closed = False  # close has begun
        self._ended = False  # close has ended

    @property
    def running(self) -> list["asyncio.Task[Any]"]:
        """Every task started here that has not ended (and every task running work here)."""
        return [*self._cancellable, *self._kept, *self._here]

    @property
    def idle(self) -> bool:
        """Whether every task started here has ended (a finished one may still be waiting for
        its done callback to leave the sets)."""
        # The empty sets first: asked after every HTTP request (Exchange.idle).
        return (
            not self._here
            and (not self._cancellable or all(task.done() for task in self._cancellable))
            and (not self._kept or all(task.done() for task in self._kept))
        )

    def spawn(self, coro: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
        """Start `coro`; it is cancelled if still running at close."""
        return self._start(coro, self._cancellable)

    def keep(self, coro: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
        """Start `coro`; close waits for it to end."""
        return self._start(coro, self._kept)

    async def run_here(self, coro: Coroutine[Any, Any, T]) -> T | None:
        """Run `coro` in the calling task as `spawn` would run it in a task of its own: close
        cancels it (with its reason) and waits for it to end. A cancel aimed at it ends only
        it, as it would end a spawned task: the caller goes on, uncancelled, and gets None."""
        if self._closed:
            coro.close()
            raise OwnerClosed("this session has closed")
        task = asyncio.current_task()
        assert task is not None
        self._here[task] = None
        cancelling = task.cancelling()
        try:
            return await coro
        except asyncio.CancelledError:
            return None
        finally:
            # The cancels that reached the work were spent on it (a cancel the work answered
            # itself too: a call cancelled by the server replies with an error).
            while task.cancelling() > cancelling:
                task.uncancel()
            ended = self._here.pop(task)
            if ended is not None and not ended.done():
                ended.set_result(None)

    def _start(
        self, coro: Coroutine[Any, Any, T], into: set[asyncio.Task[Any]]
    ) -> "asyncio.Task[T]":
        if self._ended or (self._closed and into is self._cancellable):
            coro.close()
            raise OwnerClosed("this session has closed")
        task = asyncio.create_task(coro)
        into.add(task)
        task.add_done_callback(into.discard)
        return task

    async def close(self, *, reason: object = None, batch: int = 64) -> None:
        """Cancel the spawned tasks with `reason` (the CancelledError's message, e.g. a Stop),
        `batch` per turn of the event loop (thousands ending in one turn would hold up every
        other connection), then wait for all of them."""
        self._closed = True
        # Work run in a calling task other than the closing one (a close from within its
        # own run would wait for itself): cancelled at once, while it surely still runs (a
        # task whose run has ended goes on with other work, which is not the owner's).
        here = [task for task in self._here if task is not asyncio.current_task()]
        for task in here:
            task.cancel(reason)
        spawned = _unfinished(self._cancellable)
        for start in range(0, len(spawned), batch):
            if start:
                await asyncio.sleep(0)  # let the batch before end before cancelling more
            for task in spawned[start : start + batch]:
                task.cancel(reason)
        if spawned:
            await asyncio.gather(*spawned, return_exceptions=True)
        if here:
            loop = asyncio.get_running_loop()
            ends = []
            for task in here:
                if task in self._here:  # not ended meanwhile
                    ends.append(self._here[task] or loop.create_future())
                    self._here[task] = ends[-1]
            if ends:
                await asyncio.gather(*ends)
        # Cancelled work may have started kept work (the cancel of a call run elsewhere).
        while pending := _unfinished(self._kept) + _unfinished(self._cancellable):
            await asyncio.gather(*pending, return_exceptions=True)
        self._ended = True


def _unfinished(tasks: set["asyncio.Task[Any]"]) -> list["asyncio.Task[Any]"]:
    """The tasks of `tasks` still running. A finished one is only waiting for its done
    callback to leave the set (a request's task that has just sent its reply, when an HTTP
    exchange closes): nothing to wait for, and gathering it would cost a turn of the event
    loop. Its exception, if any, counts as seen, as gathering it would have made it."""
    running = []
    for task in tasks:
        if not task.done():
            running.append(task)
        elif not task.cancelled():
            task.exception()
    return running
