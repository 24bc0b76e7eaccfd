"""The load generator of the scale-out benchmark (`bench/cluster.py`): one scenario, one JSON line.

Run by the harness in its own process (pinned like `bench/loadgen.py` where the scenario
asks for it), e.g. `python -m bench.cluster_load --scenario throughput --urls ws://...
--params '{"concurrency": 50}' --pids web=123,worker=456`. Prints `{"metrics": {...},
"samples": {...}}`; exits non-zero on any wrong reply in the scenarios that check replies.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed

from bench.cpu import CLOCK_TICKS, process_cpu_seconds
from bench.mcp_client import (
    RawClient,
    UnexpectedReply,
    check_add_result,
    open_connection,
    tool_call_request,
)
from bench.mcp_client import add_request as add_request_frame
from bench.process import raise_nofile_limit
from bench.scenarios import close_all
from bench.stats import percentile

# Fields of the `cpu` line of /proc/stat that count busy time: user nice system irq softirq steal.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
OPEN_PARALLEL = 50
PROGRESS = "notifications/progress"

Metrics = dict[str, float]
Samples = dict[str, Any]


def machine_busy_seconds() -> float:
    """Busy CPU time of the whole machine (every CPU) since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            values = [int(value) for value in line.split()[1:]]
            return sum(values[i] for i in _BUSY_FIELDS if i < len(values)) / CLOCK_TICKS
    return math.nan


def postgres_backends(database_url: str) -> list[int]:
    """The process ids of the PostgreSQL backends serving the database of `database_url`."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process; 0 when it has ended."""
    try:
        return process_cpu_seconds(pid)
    except OSError:
        return 0.0  # a backend that ended meanwhile


def _cpu_snapshot(pids: dict[str, int], backends: list[int]) -> dict[str, float]:
    snapshot = {name: cpu_seconds(pid) for name, pid in pids.items()}
    if backends:
        snapshot["postgres"] = sum(cpu_seconds(pid) for pid in backends)
    snapshot["client"] = time.process_time()
    snapshot["machine"] = machine_busy_seconds()
    return snapshot


async def open_spread(urls: list[str], count: int) -> list[RawClient]:
    """`count` initialized connections, the i-th to `urls[i % len(urls)]`, 50 handshakes at a
    time; all or nothing."""
    gate = asyncio.Semaphore(OPEN_PARALLEL)

    async def one(index: int) -> RawClient:
        async with gate:
            return await open_connection(urls[index % len(urls)])

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    connections = [r for r in results if isinstance(r, RawClient)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await close_all(connections)
        raise RuntimeError(f"{len(failures)} of {count} connections failed: {failures[0]!r}")
    return connections


async def answer_ping(connection: RawClient, message: dict[str, Any]) -> None:
    """Answer the server's MCP `ping` (it closes silent clients that do not)."""
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message.get("id"), "result": {}}
    await connection.ws.send(orjson.dumps(reply).decode())


# --- trivial calls: throughput and latency -----------------------------------------------------


async def _add_loop(connection: RawClient, start: float, end: float) -> list[float]:
    """Back-to-back `add` calls until `end`; latencies (s) of the calls completed after `start`."""
    latencies: list[float] = []
    clock = time.perf_counter
    while True:
        request_id = connection.next_id()
        sent = clock()
        await connection.ws.send(add_request_frame(request_id))
        check_add_result(await connection.ws.recv(), request_id)
        done = clock()
        if done >= end:
            return latencies
        if done >= start:
            latencies.append(done - sent)


async def throughput(
    urls: list[str], pids: dict[str, int], params: dict[str, Any]
) -> tuple[Metrics, Samples]:
    """C connections of back-to-back `tools/call add`: calls/s, p50/p99, CPU per call of each
    server process, of PostgreSQL's backends for the database (`database_url`), of this load
    generator, of the machine as a whole, and of everything else on it."""
    concurrency = int(params["concurrency"])
    warmup_s, window_s = float(params.get("warmup_s", 1.0)), float(params.get("window_s", 3.0))
    connections = await open_spread(urls, concurrency)
    try:
        start = time.perf_counter() + warmup_s
        end = start + window_s

        async def cpu_window() -> tuple[dict[str, float], dict[str, float], float]:
            backends: list[int] = []
            if params.get("database_url"):
                # Just before the window: the history writer's connection exists by then.
                await asyncio.sleep(max(0.0, start - 0.3 - time.perf_counter()))
                backends = await asyncio.to_thread(postgres_backends, params["database_url"])
            await asyncio.sleep(max(0.0, start - time.perf_counter()))
            first, at = _cpu_snapshot(pids, backends), time.perf_counter()
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            return first, _cpu_snapshot(pids, backends), time.perf_counter() - at

        accounting = asyncio.create_task(cpu_window())
        per_connection = await asyncio.gather(*(_add_loop(c, start, end) for c in connections))
        before, after, elapsed = await accounting
    finally:
        await close_all(connections)
    latencies = [sample for samples in per_connection for sample in samples]
    rate = len(latencies) / window_s
    metrics: Metrics = {
        "calls_per_s": rate,
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
    }
    used = {name: after[name] - before[name] for name in before}
    # Whatever the machine did besides the processes accounted for: other load on the host.
    used["other"] = max(0.0, used["machine"] - sum(v for k, v in used.items() if k != "machine"))
    for name, seconds in used.items():
        metrics[f"cpu_pct.{name}"] = seconds / elapsed * 100
        metrics[f"cpu_us_per_call.{name}"] = seconds / elapsed / rate * 1e6 if rate else math.nan
    return metrics, {}


# --- progress: the first notification of a call, and a stream ----------------------------------


@dataclass
class CallTrace:
    """One `tools/call` with a progressToken as the client saw it (wall-clock seconds)."""

    sent: float
    notifications: list[tuple[float, float]] = field(default_factory=list)  # (progress, at)
    done: float = math.nan
    result: dict[str, Any] | None = None


async def traced_call(
    connection: RawClient, name: str, arguments: dict[str, Any], token: str
) -> CallTrace:
    """Send one call and read until its response, stamping each frame with `time.time()`."""
    request_id = connection.next_id()
    frame = tool_call_request(request_id, name, arguments, token)
    clock = time.time
    trace = CallTrace(sent=clock())
    await connection.ws.send(frame)
    while True:
        raw = await connection.ws.recv()
        at = clock()
        message = orjson.loads(raw)
        method = message.get("method")
        if method == PROGRESS:
            params = message["params"]
            if params.get("progressToken") != token:
                raise UnexpectedReply(f"progress for another token: {raw!r:.300}")
            trace.notifications.append((float(params["progress"]), at))
        elif method == "ping" and "id" in message:
            await answer_ping(connection, message)
        elif method is None and message.get("id") == request_id:
            trace.done = at
            result = message.get("result")
            if not isinstance(result, dict) or result.get("isError"):
                raise UnexpectedReply(f"call {request_id} failed: {raw!r:.500}")
            trace.result = result
            return trace


def _processed(trace: CallTrace) -> int:
    structured = (trace.result or {}).get("structuredContent") or {}
    return int(structured.get("processed", -1))


async def first_progress(
    urls: list[str], pids: dict[str, int], params: dict[str, Any]
) -> tuple[Metrics, Samples]:
    """Sequential `process_batch(count=1, item_ms=0)` calls with a progressToken on one
    connection: time from sending the call to its (first and only) progress notification,
    and to its response."""
    calls, warmup = int(params.get("calls", 200)), int(params.get("warmup", 20))
    connection = await open_connection(urls[0])
    first: list[float] = []
    response: list[float] = []
    try:
        for index in range(warmup + calls):
            trace = await traced_call(
                connection, "process_batch", {"count": 1, "item_ms": 0}, f"first-{index}"
            )
            if not trace.notifications or _processed(trace) != 1:
                raise UnexpectedReply(
                    f"call {index}: no progress or wrong result {trace.result!r:.300}"
                )
            if index >= warmup:
                first.append(trace.notifications[0][1] - trace.sent)
                response.append(trace.done - trace.sent)
    finally:
        await close_all([connection])
    return {
        "first_p50_us": percentile(first, 0.50) * 1e6,
        "first_p99_us": percentile(first, 0.99) * 1e6,
        "response_p50_us": percentile(response, 0.50) * 1e6,
        "response_p99_us": percentile(response, 0.99) * 1e6,
    }, {}


async def progress_stream(
    urls: list[str], pids: dict[str, int], params: dict[str, Any]
) -> tuple[Metrics, Samples]:
    """Sequential `process_batch(count, item_ms)` calls with a progressToken on one connection;
    every notification's arrival time, for the harness to match with Redis MONITOR."""
    calls, warmup = int(params.get("calls", 20)), int(params.get("warmup", 2))
    arguments = {"count": int(params["count"]), "item_ms": float(params["item_ms"])}
    connection = await open_connection(urls[0])
    traces: list[dict[str, Any]] = []
    try:
        for index in range(warmup + calls):
            trace = await traced_call(connection, "process_batch", arguments, f"stream-{index}")
            if _processed(trace) != arguments["count"]:
                raise UnexpectedReply(f"call {index}: wrong result {trace.result!r:.300}")
            if index >= warmup:
                traces.append(
                    {"sent": trace.sent, "done": trace.done, "notes": trace.notifications}
                )
    finally:
        await close_all([connection])
    notes = sum(len(trace["notes"]) for trace in traces)
    return {"notifications": float(notes)}, {"calls": traces}


# --- many connections, each with a running operation -------------------------------------------


@dataclass
class Outcome:
    """How one connection's call ended, as the client saw it."""

    status: str = "lost"  # ok, failed, wrong, closed, lost
    last_progress: float | None = None
    notifications: int = 0
    duration: float = math.nan
    detail: str = ""


async def _follow(
    connection: RawClient,
    index: int,
    arguments: dict[str, Any],
    go: asyncio.Event,
    deadline_s: float,
) -> Outcome:
    """Send the call when told, then read notifications until the response, or until
    `deadline_s` have passed."""
    outcome = Outcome()
    token = f"scale-{index}"
    request_id = connection.next_id()
    await go.wait()
    sent = time.monotonic()
    deadline = sent + deadline_s
    try:
        await connection.ws.send(tool_call_request(request_id, "process_batch", arguments, token))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return outcome  # lost: no response in time
            try:
                raw = await asyncio.wait_for(connection.ws.recv(), left)
            except TimeoutError:
                return outcome
            message = orjson.loads(raw)
            method = message.get("method")
            if method == PROGRESS:
                outcome.notifications += 1
                outcome.last_progress = float(message["params"]["progress"])
            elif method == "ping" and "id" in message:
                await answer_ping(connection, message)
            elif method is None and message.get("id") == request_id:
                outcome.duration = time.monotonic() - sent
                result = message.get("result")
                if not isinstance(result, dict) or result.get("isError"):
                    outcome.status = "failed"
                    error = message.get("error") or {}
                    outcome.detail = str(error.get("message") or raw)[:300]
                    return outcome
                processed = (result.get("structuredContent") or {}).get("processed")
                outcome.status = "ok" if processed == arguments["count"] else "wrong"
                return outcome
    except ConnectionClosed as closed:
        outcome.status = "closed"
        outcome.detail = f"closed {closed.rcvd.code if closed.rcvd else 'without a frame'}"
        return outcome


async def scale(
    urls: list[str], pids: dict[str, int], params: dict[str, Any]
) -> tuple[Metrics, Samples]:
    """N connections spread over the web processes, each sending one `process_batch` with a
    progressToken at the same moment: how many results arrive, complete with final progress."""
    count_connections = int(params["connections"])
    arguments = {"count": int(params["count"]), "item_ms": float(params["item_ms"])}
    opened_at = time.perf_counter()
    connections = await open_spread(urls, count_connections)
    open_s = time.perf_counter() - opened_at
    go = asyncio.Event()
    deadline_s = float(params.get("deadline_s", 300.0))
    try:
        followers = [
            asyncio.create_task(_follow(c, i, arguments, go, deadline_s))
            for i, c in enumerate(connections)
        ]
        await asyncio.sleep(0)
        started = time.monotonic()
        go.set()
        outcomes = await asyncio.gather(*followers)
        elapsed = time.monotonic() - started
    finally:
        await close_all(connections)
    total = float(arguments["count"])
    ok = [o for o in outcomes if o.status == "ok"]
    durations = [o.duration for o in outcomes if not math.isnan(o.duration)]
    statuses = ("ok", "failed", "wrong", "closed", "lost")
    metrics: Metrics = {f"calls.{s}": float(sum(o.status == s for o in outcomes)) for s in statuses}
    metrics.update(
        {
            "connections": float(len(connections)),
            "results_lost": float(len(outcomes) - len(ok)),
            "no_response": float(sum(o.status in ("lost", "closed") for o in outcomes)),
            "final_progress_missing": float(sum(o.last_progress != total for o in ok)),
            "notifications": float(sum(o.notifications for o in outcomes)),
            "open_s": open_s,
            "all_done_s": elapsed,
            "duration_p50_s": percentile(durations, 0.50),
            "duration_p99_s": percentile(durations, 0.99),
            "duration_max_s": max(durations, default=math.nan),
        }
    )
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status != "ok":
            kind = f"{outcome.status}: {outcome.detail}" if outcome.detail else outcome.status
            kinds[kind] = kinds.get(kind, 0) + 1
    missing = [
        f"{i}: last progress {o.last_progress}"
        for i, o in enumerate(outcomes)
        if o.status == "ok" and o.last_progress != total
    ]
    return metrics, {"problems": kinds, "final_missing": missing[:50]}


SCENARIOS: dict[
    str,
    Callable[
        [list[str], dict[str, int], dict[str, Any]],
        Coroutine[Any, Any, tuple[Metrics, Samples]],
    ],
] = {
    "throughput": throughput,
    "first-progress": first_progress,
    "progress-stream": progress_stream,
    "scale": scale,
}


def _pids(text: str) -> dict[str, int]:
    pairs = (item.split("=", 1) for item in text.split(",") if item)
    return {name: int(pid) for name, pid in pairs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The load generator's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--urls", required=True, help="comma-separated MCP WebSocket URLs")
    parser.add_argument("--params", default="{}", help="the scenario's parameters as JSON")
    parser.add_argument("--pids", default="", help="name=pid,... of processes to account CPU to")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one scenario on uvloop and print its metrics and samples as one JSON line."""
    args = parse_args(argv)
    raise_nofile_limit()
    import uvloop

    scenario = SCENARIOS[args.scenario]
    urls = [url for url in args.urls.split(",") if url]
    metrics, samples = uvloop.run(scenario(urls, _pids(args.pids), orjson.loads(args.params)))
    sys.stdout.write(orjson.dumps({"metrics": metrics, "samples": samples}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
