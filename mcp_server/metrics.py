"""Every Prometheus metric of the service, and the one-line calls that record them.

The seams where things happen (the admission middleware, the session, the runner, the history
writer, the cluster) call the functions below; nothing else touches prometheus-client. With
`PROMETHEUS_MULTIPROC_DIR` set (before the process starts), each process writes its values to
files in that directory and any process's `/metrics` sums them all (prometheus-client's
multiprocess mode); without it a process exposes its own values only. `MCP_METRICS=false`
turns every call here into a no-op.

Per-request counts (requests, progress notifications, tool calls) are buffered on the event
loop and written at most once a second, at each heartbeat round, before a scrape and at exit:
a value write of the multiprocess mode takes a lock and writes a memory map, too much for
every ping.

Labels are bounded: method names are MCP's, tool names come from the registry ("other"
otherwise), statuses and limits are enums; never a token, user or operation id. The tenant's
slug is a label only when `MCP_METRICS_TENANT_LABEL` is on.
"""

import atexit
import bisect
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from mcp_server.protocol import methods
from mcp_server.tools.registry import registry as tool_registry

if TYPE_CHECKING:
    from accounts.principal import Principal
    from mcp_server.runtime.operation import RunningOperation
    from mcp_server.runtime.runner import OperationRunner

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
ENABLED: bool = settings.MCP_METRICS
TENANT_LABEL: bool = settings.MCP_METRICS_TENANT_LABEL
_MULTIPROCESS_DIR = os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None
if _MULTIPROCESS_DIR:
    # Created if missing (never emptied here: other processes of the set may be writing).
    Path(_MULTIPROCESS_DIR).mkdir(parents=True, exist_ok=True)
# One process alone: its own registry. Several: values live in files, read at scrape time.
_LOCAL = None if _MULTIPROCESS_DIR else CollectorRegistry()
_TENANT: tuple[str, ...] = ("tenant",) if TENANT_LABEL else ()
_KNOWN_METHODS = frozenset(
    value for name, value in vars(methods).items() if name.isupper() and isinstance(value, str)
)
# Seconds; from a ping-sized call to a long batch.
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

CONNECTIONS_OPEN = Gauge(
    "mcp_connections_open",
    "Open MCP connections, by transport.",
    ("transport", *_TENANT),
    multiprocess_mode="livesum",
    registry=_LOCAL,
)
REQUESTS = Counter(
    "mcp_requests",
    "JSON-RPC requests answered, by method and outcome (ok, error, cancelled).",
    ("method", "outcome", *_TENANT),
    registry=_LOCAL,
)
TOOL_CALLS = Histogram(
    "mcp_tool_call_duration_seconds",
    "Tool calls by tool and final status; seconds from getting a run slot (or from being "
    "queued, for calls that never ran) to the end. `_count` is the number of calls.",
    ("tool", "status", *_TENANT),
    buckets=_DURATION_BUCKETS,
    registry=_LOCAL,
)
QUEUE_WAIT = Histogram(
    "mcp_queue_wait_seconds",
    "Seconds tool calls that waited waited for a run slot (for calls handed to workers, from "
    "the hand-off); calls given a slot within a millisecond are not observed.",
    buckets=_DURATION_BUCKETS,
    registry=_LOCAL,
)
QUEUE_DEPTH = Gauge(
    "mcp_queue_depth",
    "Tool calls waiting for a run slot (sampled every heartbeat round).",
    multiprocess_mode="livesum",
    registry=_LOCAL,
)
OPERATIONS_RUNNING = Gauge(
    "mcp_operations_running",
    "Tool calls holding a run slot (sampled every heartbeat round).",
    multiprocess_mode="livesum",
    registry=_LOCAL,
)
PROGRESS_NOTIFICATIONS = Counter(
    "mcp_progress_notifications",
    "Progress reports of tools: sent as notifications/progress, or coalesced (replaced by a "
    "newer report before they could be sent).",
    ("outcome",),
    registry=_LOCAL,
)
HISTORY_WRITE_LAG = Histogram(
    "mcp_history_write_lag_seconds",
    "Seconds from the oldest state of a history batch being recorded to the batch being written.",
    buckets=_LAG_BUCKETS,
    registry=_LOCAL,
)
HISTORY_BACKLOG = Gauge(
    "mcp_history_backlog",
    "Operation states waiting for the history writer (after each flush).",
    multiprocess_mode="livesum",
    registry=_LOCAL,
)
HISTORY_FAILURES = Counter(
    "mcp_history_write_failures",
    "History writes that failed: `unavailable` (the database; kept to retry), `set_aside` "
    "(rows the database refused), `full` (states dropped: the queue was at its bound) or "
    "`writer_lost` (the writer process died; what it held is sent again).",
    ("kind",),
    registry=_LOCAL,
)
HANDOFF_LAG = Histogram(
    "mcp_worker_handoff_lag_seconds",
    "Seconds from a web process handing a call over to a worker claiming it.",
    buckets=_LAG_BUCKETS,
    registry=_LOCAL,
)
REFUSALS = Counter(
    "mcp_refusals",
    "Connections, messages and requests refused over a limit, by limit.",
    ("limit", *_TENANT),
    registry=_LOCAL,
)
FANOUT_CHUNKS = Counter(
    "mcp_fanout_chunks",
    "Fan-out chunks by outcome: `ran` (to its end), `rerun` (lost with its worker, run again), "
    "`lost` (lost, and its call interrupted).",
    ("outcome",),
    registry=_LOCAL,
)
CHANNEL_LAYER_ERRORS = Counter(
    "mcp_channel_layer_errors",
    "Failed channel-layer (Redis) operations, by operation (receive, send).",
    ("operation",),
    registry=_LOCAL,
)

_children: dict[tuple[Any, ...], Any] = {}
# Series of bounded label sets exist from the start at 0, so that rate() sees their first rise.
_REFUSAL_LIMITS = (
    "connections",
    "messages_per_user",
    "messages_per_tenant",
    "in_flight_per_connection",
    "in_flight_per_user",
    "in_flight_per_tenant",
)
_KNOWN_SERIES: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (PROGRESS_NOTIFICATIONS, ("sent", "coalesced")),
    (HISTORY_FAILURES, ("unavailable", "set_aside", "full", "writer_lost")),
    (CHANNEL_LAYER_ERRORS, ("receive", "send")),
    (FANOUT_CHUNKS, ("ran", "rerun", "lost")),
    *(() if TENANT_LABEL else ((REFUSALS, _REFUSAL_LIMITS),)),
)


def _child(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, cached: recording costs one dict lookup, not a validation."""
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


if ENABLED:
    for _metric, _values in _KNOWN_SERIES:
        for _value in _values:
            _child(_metric, _value)


class CounterBuffer:
    """Counts and observations made per request, added to their values at most once a second.

    A value write of prometheus-client's multiprocess mode takes a lock and writes a file's
    memory map; buffered, a busy series costs one write a second instead of one per request.
    Whatever is buffered is written on the next count after a second, at every heartbeat
    round (`sample_runtime`), before a scrape and at exit: a scrape lags by a heartbeat round
    at most. Only the event loop's thread counts here.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._counts: dict[Any, float] = {}
        self._due = time.monotonic() + interval

    def add(self, child: Any, amount: float = 1) -> None:
        """Count `amount` on `child` (a labelled counter)."""
        counts = self._counts
        counts[child] = counts.get(child, 0) + amount
        if time.monotonic() >= self._due:
            self.flush()

    def observe(self, child: Any, value: float) -> None:
        """Observe `value` on `child` (a labelled histogram), as `child.observe` would.

        prometheus-client writes a histogram as one value per bucket (the bucket the value
        falls in, made cumulative when scraped) and its sum: those two values are counted.
        """
        bucket = child._buckets[bisect.bisect_left(child._upper_bounds, value)]
        self.add(bucket)
        self.add(child._sum, value)

    def flush(self) -> None:
        """Write everything buffered to the counters (from the thread that counts)."""
        counts, self._counts = self._counts, {}
        self._due = time.monotonic() + self._interval
        for child, amount in counts.items():
            child.inc(amount)


_buffered = CounterBuffer()


def _tenant(principal: "Principal") -> tuple[str, ...]:
    return (principal.tenant_slug,) if TENANT_LABEL else ()


def tool_label(name: str) -> str:
    """`name` when it is a registered tool, else "other"."""
    return name if tool_registry.get(name) is not None else OTHER


def method_label(method: str) -> str:
    """`method` when it is an MCP method name, else "other"."""
    return method if method in _KNOWN_METHODS else OTHER


def connection_opened(transport: str, principal: "Principal") -> None:
    """A connection of `principal` over `transport` was admitted."""
    if ENABLED:
        _child(CONNECTIONS_OPEN, transport, *_tenant(principal)).inc()


def connection_closed(transport: str, principal: "Principal") -> None:
    """A connection counted by connection_opened has ended."""
    if ENABLED:
        _child(CONNECTIONS_OPEN, transport, *_tenant(principal)).dec()


# The labelled children of the per-request series by what a caller gives (bounded: a method
# or tool name that is not known is "other", and keyed as such), one dict lookup per count.
_answered: dict[tuple[str, str, str | None], Any] = {}
_finished: dict[tuple[str, str, str | None], Any] = {}


def request_answered(method: str, outcome: str, principal: "Principal") -> None:
    """One request of `method` ended with `outcome` (ok, error, cancelled)."""
    if ENABLED:
        tenant = principal.tenant_slug if TENANT_LABEL else None
        child = _answered.get((method, outcome, tenant))
        if child is None:
            label = method_label(method)
            child = _child(REQUESTS, label, outcome, *_tenant(principal))
            _answered[(label, outcome, tenant)] = child
        _buffered.add(child)


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return max(0.0, (end - start).total_seconds()) if start and end else 0.0


# Waits shorter than this are a slot granted at once: not observed, which spares the common
# path two value writes (tool calls minus this histogram's count got their slot at once).
_IMMEDIATE = 0.001


def operation_started(operation: "RunningOperation") -> None:
    """A call got its run slot: record how long it waited, if it waited."""
    if ENABLED:
        waited = _seconds(operation.queued_at, operation.started_at)
        if waited >= _IMMEDIATE:
            # Buffered like the per-call counts: at C=50 most calls wait a little, and a
            # direct observe is a locked write to the multiprocess file per call.
            _buffered.observe(QUEUE_WAIT, waited)


def operation_finished(operation: "RunningOperation") -> None:
    """A call ended: count it by tool and status with its duration."""
    if ENABLED:
        start = operation.started_at or operation.queued_at
        principal = operation.principal
        key = (
            operation.tool_name,
            operation.status,
            principal.tenant_slug if TENANT_LABEL else None,
        )
        child = _finished.get(key)
        if child is None:
            label = tool_label(operation.tool_name)
            child = _child(TOOL_CALLS, label, str(operation.status), *_tenant(principal))
            _finished[(label, *key[1:])] = child
        _buffered.observe(child, _seconds(start, operation.finished_at))


def sample_runtime(runner: "OperationRunner") -> None:
    """Record how many calls this process's runner queues and runs now."""
    if ENABLED:
        QUEUE_DEPTH.set(runner.scheduler.waiting)
        OPERATIONS_RUNNING.set(runner.scheduler.running)
        _buffered.flush()


def progress_sent() -> None:
    """One notifications/progress went out."""
    if ENABLED:
        _buffered.add(_child(PROGRESS_NOTIFICATIONS, "sent"))


def progress_coalesced(count: int) -> None:
    """`count` progress reports were replaced by newer ones before being sent."""
    if ENABLED and count > 0:
        _child(PROGRESS_NOTIFICATIONS, "coalesced").inc(count)


def history_written(lag: float, backlog: int) -> None:
    """A history batch was written `lag` seconds after its oldest state; `backlog` wait."""
    if ENABLED:
        HISTORY_WRITE_LAG.observe(lag)
        HISTORY_BACKLOG.set(backlog)


def history_failed(kind: str, count: int = 1) -> None:
    """A history write failed (`unavailable`, `set_aside` rows, `full`, `writer_lost`)."""
    if ENABLED:
        _child(HISTORY_FAILURES, kind).inc(count)


def handoff_claimed(queued_at: datetime | None) -> None:
    """A worker claimed a call handed over at `queued_at`."""
    if ENABLED and queued_at is not None:
        HANDOFF_LAG.observe(_seconds(queued_at, timezone.now()))


def refused(limit: str, principal: "Principal", count: int = 1) -> None:
    """`count` connections, messages or requests of `principal` were refused over `limit`
    (a limit's name such as "messages per user" or "in_flight_per_user")."""
    if ENABLED and count > 0:
        _child(REFUSALS, limit.replace(" ", "_"), *_tenant(principal)).inc(count)


def chunk_ended(outcome: str) -> None:
    """A fan-out chunk ended: `ran`, `rerun` or `lost`."""
    if ENABLED:
        _child(FANOUT_CHUNKS, outcome).inc()


def channel_layer_error(operation: str) -> None:
    """A channel-layer `operation` (receive, send) failed."""
    if ENABLED:
        _child(CHANNEL_LAYER_ERRORS, operation).inc()


def flush() -> None:
    """Write this process's buffered counts now (on its event loop: that is where they are
    counted)."""
    _buffered.flush()


def exposition() -> bytes:
    """Every metric in the Prometheus text format: all processes' in multiprocess mode."""
    if _LOCAL is not None:
        return generate_latest(_LOCAL)
    scraped = CollectorRegistry()
    multiprocess.MultiProcessCollector(scraped, path=_MULTIPROCESS_DIR)
    return generate_latest(scraped)


CONTENT_TYPE = CONTENT_TYPE_LATEST


def clear_multiprocess_directory(path: Path) -> None:
    """Create `path`, or empty it of a previous process set's value files (call it before the
    processes that share it start, as prometheus-client requires)."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def _process_exiting() -> None:
    _buffered.flush()
    # Live gauges (open connections, queue depth) of a process that has ended count no more.
    if _MULTIPROCESS_DIR:
        multiprocess.mark_process_dead(os.getpid(), _MULTIPROCESS_DIR)


atexit.register(_process_exiting)
