"""Every Prometheus metric of the service, and the one-line calls that record them.

The seams where things happen (the admission middleware, the session, the runner, the history
writer, the cluster) call the functions below; nothing else touches prometheus-client. With
`PROMETHEUS_MULTIPROC_DIR` set (before the process starts), each process writes its values to
files in that directory and any process's `/metrics` sums them all (prometheus-client's
multiprocess mode); without it a process exposes its own values only. `MCP_METRICS=false`
turns every call here into a no-op.

What is recorded per request or per connection (requests, tool calls and their waits,
progress, refusals, connections, chunks, channel-layer errors, hand-offs) is tallied on the
event loop in plain dicts and lists (`Tally`, in metrics_tally.py) and written at each
heartbeat round, before a scrape and at exit: a value write of the multiprocess mode takes a
lock and writes a memory map, too much for every ping. The history writer's thread records
once per batch, directly.

Labels are bounded: method names are MCP's, tool names come from the registry ("other"
otherwise), statuses and limits are enums; never a token, user or operation id. The tenant's
slug is a label only when `MCP_METRICS_TENANT_LABEL` is on.
"""

import atexit
import os
from datetime import datetime, timedelta
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

from mcp_server.metrics_tally import Tally
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


def _resolve(key: tuple[Any, ...]) -> Any:
    """The labelled child a tally key stands for (its metric itself when it has no labels)."""
    metric, *values = key
    if not values:
        return metric
    if metric is TOOL_CALLS:
        values[0] = tool_label(values[0])
    return _child(metric, *map(str, values))


_tally = Tally(_resolve)


def tool_label(name: str) -> str:
    """`name` when it is a registered tool, else "other"."""
    return name if tool_registry.get(name) is not None else OTHER


# Each recording function below builds its key inline (the tenant's slug last, when it is a
# label): the hot path is one tuple and one dict update, no call into prometheus-client.


def connection_opened(transport: str, principal: "Principal") -> None:
    """A connection of `principal` over `transport` was admitted."""
    if ENABLED:
        if TENANT_LABEL:
            _tally.count((CONNECTIONS_OPEN, transport, principal.tenant_slug))
        else:
            _tally.count((CONNECTIONS_OPEN, transport))


def connection_closed(transport: str, principal: "Principal") -> None:
    """A connection counted by connection_opened has ended."""
    if ENABLED:
        if TENANT_LABEL:
            _tally.count((CONNECTIONS_OPEN, transport, principal.tenant_slug), -1)
        else:
            _tally.count((CONNECTIONS_OPEN, transport), -1)


def request_answered(method: str, outcome: str, principal: "Principal") -> None:
    """One request of `method` ended with `outcome` (ok, error, cancelled)."""
    if ENABLED:
        # Named here, not at the flush: a client may send any number of unknown method names.
        if method not in _KNOWN_METHODS:
            method = OTHER
        if TENANT_LABEL:
            _tally.count((REQUESTS, method, outcome, principal.tenant_slug))
        else:
            _tally.count((REQUESTS, method, outcome))


# Waits shorter than this are a slot granted at once: not observed (tool calls minus this
# histogram's count got their slot at once).
_IMMEDIATE = timedelta(milliseconds=1)
_QUEUE_WAIT_KEY = (QUEUE_WAIT,)
_HANDOFF_LAG_KEY = (HANDOFF_LAG,)


def operation_started(operation: "RunningOperation") -> None:
    """A call got its run slot: record how long it waited, if it waited."""
    if ENABLED:
        started_at = operation.started_at
        if started_at is not None:
            waited = started_at - operation.queued_at
            if waited >= _IMMEDIATE:
                _tally.observe(_QUEUE_WAIT_KEY, waited)


def operation_finished(operation: "RunningOperation") -> None:
    """A call ended: count it by tool and status with its duration."""
    if ENABLED and operation.finished_at is not None:
        # The tool's name comes from the registry (it is labelled as such at the flush).
        key: tuple[Any, ...] = (TOOL_CALLS, operation.tool_name, operation.status)
        if TENANT_LABEL:
            key += (operation.principal.tenant_slug,)
        start = operation.started_at or operation.queued_at
        _tally.observe(key, operation.finished_at - start)


def sample_runtime(runner: "OperationRunner") -> None:
    """Record how many calls this process's runner queues and runs now, and write what the
    tally holds (once per heartbeat round)."""
    if ENABLED:
        QUEUE_DEPTH.set(runner.scheduler.waiting)
        OPERATIONS_RUNNING.set(runner.scheduler.running)
        _tally.flush()


_PROGRESS_SENT = (PROGRESS_NOTIFICATIONS, "sent")
_PROGRESS_COALESCED = (PROGRESS_NOTIFICATIONS, "coalesced")


def progress_sent() -> None:
    """One notifications/progress went out."""
    if ENABLED:
        _tally.count(_PROGRESS_SENT)


def progress_coalesced(count: int) -> None:
    """`count` progress reports were replaced by newer ones before being sent."""
    if ENABLED and count > 0:
        _tally.count(_PROGRESS_COALESCED, count)


# The history writer records from its own thread, once per batch: straight to the metrics.


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
        _tally.observe(_HANDOFF_LAG_KEY, timezone.now() - queued_at)


def refused(limit: str, principal: "Principal", count: int = 1) -> None:
    """`count` connections, messages or requests of `principal` were refused over `limit`
    (a limit's name such as "messages per user" or "in_flight_per_user")."""
    if ENABLED and count > 0:
        label = limit.replace(" ", "_")
        if TENANT_LABEL:
            _tally.count((REFUSALS, label, principal.tenant_slug), count)
        else:
            _tally.count((REFUSALS, label), count)


def chunk_ended(outcome: str) -> None:
    """A fan-out chunk ended: `ran`, `rerun` or `lost`."""
    if ENABLED:
        _tally.count((FANOUT_CHUNKS, outcome))


def channel_layer_error(operation: str) -> None:
    """A channel-layer `operation` (receive, send) failed."""
    if ENABLED:
        _tally.count((CHANNEL_LAYER_ERRORS, operation))


def flush() -> None:
    """Write what this process has tallied now (on its event loop: that is where it counts)."""
    _tally.flush()


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
    _tally.flush()
    # Live gauges (open connections, queue depth) of a process that has ended count no more.
    if _MULTIPROCESS_DIR:
        multiprocess.mark_process_dead(os.getpid(), _MULTIPROCESS_DIR)


atexit.register(_process_exiting)
