"""Fan-out: one call's many independent items split into chunks that run in parallel.

A tool declares the function that does one item with `@chunk_function` (importable by name in
any process: the registry is filled when the tool's module is imported, which every process
does) and calls `await ctx.fan_out(function, items, **params)`. The items are cut into chunks;
a `ChunkExecutor` runs each one, on this process's cores (`chunk_pool.LocalChunks`) or on any
free worker (`cluster.chunks.ClusterChunks`), in the fair order of the call's tenant, user and
connection. `fan_out` adds the chunks' item counts into the call's one progress stream,
records their items' failures in the run's error log, stops every chunk when the call is
cancelled, and re-runs a chunk whose worker was lost when the tool is idempotent.

An item function is plain and synchronous: `fn(item, **params) -> value`. It raises
`ItemFailed(reason)` for an item that goes to the error log; any other exception fails the
call. It never touches sockets, JSON-RPC or the database, and its items, params and values
must be plain data (str, bytes, numbers, lists, dicts): they cross processes.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django.conf import settings

from mcp_server.runtime.limits import SlotKey

logger = logging.getLogger(__name__)

ItemFunction = Callable[..., Any]


class ItemFailed(Exception):
    """One item failed: `reason` goes to the run's error log and the other items go on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChunksLost(BaseException):
    """A chunk's worker died and the tool is not idempotent: the call ends `interrupted`.

    A BaseException, as CancelledError is: it ends the call, and no tool's `except Exception`
    may turn it into a result.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ChunkLost(Exception):
    """No sign of life from the process running a chunk within the bound (it died), or
    (`runner` empty) no process took the chunk within MCP_OPERATION_UNCLAIMED_AFTER."""

    def __init__(self, runner: str, *, why: str = "") -> None:
        super().__init__(runner, why)
        self.runner = runner
        self.why = why

    @property
    def what(self) -> str:
        """What happened to the chunk, for history ("was lost with its worker host:pid")."""
        if self.why:
            return self.why
        if self.runner:
            return f"was lost with its worker {self.runner}"
        return "was taken by no worker in time (MCP_OPERATION_UNCLAIMED_AFTER)"


class ChunkFailed(Exception):
    """A chunk's item function raised something other than ItemFailed where it ran (a
    worker): the call fails, as a tool that raises does."""


class FanOutRefused(ValueError):
    """A fan-out outside its bounds (chunk size, number of items), refused before any chunk;
    its caller gets the sentence as a tool error."""


class UnknownChunkFunction(LookupError):
    """A chunk names an item function no `@chunk_function` declared in this process."""


_functions: dict[str, ItemFunction] = {}


def function_name(fn: ItemFunction) -> str:
    """The name a chunk carries for `fn`: its module and qualified name."""
    return f"{fn.__module__}:{fn.__qualname__}"


def chunk_function(fn: ItemFunction) -> ItemFunction:
    """Declare `fn` an item function for `ctx.fan_out`: any process can run it by name."""
    name = function_name(fn)
    existing = _functions.get(name)
    if existing is not None and existing is not fn:
        raise ValueError(f"two chunk functions are called {name!r}")
    _functions[name] = fn
    return fn


def chunk_function_named(name: str) -> ItemFunction:
    """The item function declared as `name` (UnknownChunkFunction when there is none)."""
    fn = _functions.get(name)
    if fn is None:
        raise UnknownChunkFunction(name)
    return fn


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """Some consecutive items of one call, for one item function."""

    operation_id: str
    index: int
    function: str
    # The position of the chunk's first item among the call's items.
    start: int
    items: list[Any]
    params: dict[str, Any]
    # Whose fair share it takes: the call's tenant, user and connection.
    key: SlotKey


@dataclasses.dataclass(slots=True)
class ChunkOutcome:
    """What a chunk did: values and failures by the item's position within the chunk."""

    values: list[tuple[int, Any]]
    errors: list[tuple[int, str]]
    # The process that ran it (host:pid; a worker's name in a cluster).
    runner: str = ""


def run_items(
    function: str,
    items: Sequence[Any],
    params: dict[str, Any],
    stop_requested: Callable[[], bool],
) -> ChunkOutcome:
    """Run one chunk's items in order, checking `stop_requested` before each (where the chunk
    runs: a pool process). A stopped chunk returns what it did so far."""
    fn = chunk_function_named(function)
    outcome = ChunkOutcome(values=[], errors=[])
    for position, item in enumerate(items):
        if stop_requested():
            break
        try:
            outcome.values.append((position, fn(item, **params)))
        except ItemFailed as failed:
            outcome.errors.append((position, failed.reason))
    return outcome


class ChunkExecutor(Protocol):
    """Runs chunks: on this process's cores, or on the cluster's workers."""

    async def run(self, chunk: Chunk) -> ChunkOutcome:
        """Run `chunk` to its end; cancelling the await stops it (queued: never started;
        running: at its next item). ChunkLost when the process running it died."""


@dataclasses.dataclass(frozen=True, slots=True)
class FanOutResult:
    """What `ctx.fan_out` returns: every item's value (None for a failed item) in item order."""

    values: list[Any]
    succeeded: int
    failed: int
    chunks: int
    # The chunks run a second time (or more) because their worker was lost, by index.
    rerun: tuple[int, ...]
    # How many chunks each process (host:pid) ran.
    runners: dict[str, int]

    def describe(self) -> str:
        """What history keeps of the fan-out (the run's last message): where the chunks ran,
        and which were re-run."""
        ran = ", ".join(f"{name} ({count})" for name, count in sorted(self.runners.items()))
        text = f"{len(self.values):,} items in {self.chunks:,} chunks, run by {ran or 'none'}"
        if self.rerun:
            again = ", ".join(str(index) for index in self.rerun)
            text += f"; re-run after their worker was lost: chunks {again}"
        return text


@dataclasses.dataclass(frozen=True, slots=True)
class FanOutBounds:
    """Chunk size and call bounds (MCP_FANOUT_*)."""

    chunk_size: int
    max_chunk_size: int
    chunks_in_flight: int
    max_items: int
    attempts: int

    @classmethod
    def from_settings(cls) -> "FanOutBounds":
        """The bounds the operator set."""
        return cls(
            chunk_size=settings.MCP_FANOUT_CHUNK_SIZE,
            max_chunk_size=settings.MCP_FANOUT_MAX_CHUNK_SIZE,
            chunks_in_flight=settings.MCP_FANOUT_CHUNKS_IN_FLIGHT,
            max_items=settings.MCP_FANOUT_MAX_ITEMS,
            attempts=settings.MCP_FANOUT_CHUNK_ATTEMPTS,
        )

    def checked_chunk_size(self, chunk_size: int | None, items: int) -> int:
        """The chunk size to use, or FanOutRefused when the call is outside the bounds."""
        if items > self.max_items:
            raise FanOutRefused(
                f"{items:,} items are more than one call may fan out "
                f"(MCP_FANOUT_MAX_ITEMS={self.max_items:,})"
            )
        size = self.chunk_size if chunk_size is None else chunk_size
        if not 1 <= size <= self.max_chunk_size:
            raise FanOutRefused(
                f"chunk_size must be between 1 and {self.max_chunk_size:,} "
                f"(MCP_FANOUT_MAX_CHUNK_SIZE), not {size}"
            )
        return size


class Progress(Protocol):
    """The call's progress and error log (the ToolContext)."""

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report `done` of `total` items."""

    def item_error(self, item: str, message: str) -> None:
        """Record one failed item."""


async def fan_out(
    *,
    executor: ChunkExecutor,
    report: Progress,
    operation_id: str,
    key: SlotKey,
    idempotent: bool,
    fn: ItemFunction,
    items: Sequence[Any],
    params: dict[str, Any],
    chunk_size: int | None,
    label: Callable[[Any], str],
    bounds: FanOutBounds,
) -> FanOutResult:
    """Run `fn` over `items` in chunks through `executor` (what `ToolContext.fan_out` does)."""
    # Imported here: metrics imports the tool registry, which imports this module.
    from mcp_server import metrics

    name = function_name(fn)
    chunk_function_named(name)  # declared, so every process can run it
    size = bounds.checked_chunk_size(chunk_size, len(items))
    total = len(items)
    chunks = [
        Chunk(operation_id, index, name, start, list(items[start : start + size]), params, key)
        for index, start in enumerate(range(0, total, size))
    ]
    values: list[Any] = [None] * total
    failed = done = 0
    rerun: list[int] = []
    runners: dict[str, int] = {}

    async def one(chunk: Chunk) -> None:
        nonlocal failed, done
        attempt = 1
        while True:
            try:
                outcome = await executor.run(chunk)
                break
            except ChunkLost as lost:
                if not idempotent or attempt >= bounds.attempts:
                    metrics.chunk_ended("lost")
                if not idempotent:
                    raise ChunksLost(f"chunk {chunk.index} of {len(chunks)} {lost.what}") from None
                if attempt >= bounds.attempts:
                    raise ChunksLost(
                        f"chunk {chunk.index} of {len(chunks)} was lost {attempt} times "
                        f"(MCP_FANOUT_CHUNK_ATTEMPTS={bounds.attempts})"
                    ) from None
                attempt += 1
                rerun.append(chunk.index)
                metrics.chunk_ended("rerun")
                logger.warning(
                    "operation %s: chunk %d %s; re-running it", operation_id, chunk.index, lost.what
                )
        for position, value in outcome.values:
            values[chunk.start + position] = value
        for position, reason in outcome.errors:
            report.item_error(label(chunk.items[position]), reason)
        failed += len(outcome.errors)
        done += len(chunk.items)
        runners[outcome.runner] = runners.get(outcome.runner, 0) + 1
        metrics.chunk_ended("ran")
        # The message names the chunk's last item, as a loop reporting each item would.
        report.progress(done, total, label(chunk.items[-1]))

    # CHUNKS_IN_FLIGHT lanes, each taking the next chunk when its last one ended: at most
    # that many chunks of this call are out at once, in item order.
    waiting = iter(chunks)

    async def lane() -> None:
        for chunk in waiting:
            await one(chunk)

    lanes = min(bounds.chunks_in_flight, len(chunks))
    tasks = [asyncio.ensure_future(lane()) for _ in range(lanes)]
    try:
        await _all_or_first_failure(tasks)
    finally:
        for task in tasks:
            task.cancel()
        # Every chunk has stopped before the tool goes on (and cleans up its output).
        await stopped(tasks)
    result = FanOutResult(
        values=values,
        succeeded=total - failed,
        failed=failed,
        chunks=len(chunks),
        rerun=tuple(sorted(set(rerun))),
        runners=runners,
    )
    # The history row keeps the last message: where the chunks ran, which ran again.
    report.progress(total, total, result.describe())
    if rerun:
        logger.warning("operation %s: %s", operation_id, result.describe())
    return result


async def _all_or_first_failure(tasks: Sequence["asyncio.Future[None]"]) -> None:
    """Wait for every task; the first that fails raises its exception at once."""
    pending = set(tasks)
    while pending:
        finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in finished:
            exc = task.exception()
            if exc is not None:
                raise exc


async def stopped(tasks: Sequence["asyncio.Future[Any]"]) -> None:
    """Wait until every task has ended, however often the waiter is cancelled meanwhile; a
    cancel that came meanwhile is raised once they have.

    Not `gather`: cancelling a gather cancels what it waits for again, which cut the chunks'
    stops short before a worker that held one was told (`chunk.cancel`), so it ran on; and
    a call is cancelled again while it stops (a worker's round re-reads its cancel mark)."""
    cancelled = False
    pending = {task for task in tasks if not task.done()}
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: the first failure was raised already
    if cancelled:
        raise asyncio.CancelledError
