"""The scale-out benchmark's scenarios: trivial calls with every process's CPU, progress
latency, many connections each running a call, `kill -9` of workers mid-call; where a progress
message is on its way from a worker to a client, read from Redis MONITOR (the channels-redis
commands each message takes are described in docs/BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import math
import os
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urljoin

import msgpack
import psycopg
from websockets.exceptions import ConnectionClosed

from bench.http_load import http_client
from bench.long_running import SLOWEST_IMAGES_PER_S, ImagesPing
from bench.measure import busy_seconds, cpu_seconds, percentile
from bench.report import CALLS, FAILOVER, PROGRESS, SCALE, Goal, Metric, Row, declare
from bench.scenarios import (
    CallTrace,
    LoadTarget,
    Scenario,
    Throughput,
    close_all,
    connect,
    open_many,
    traced_call,
)
from mcp_server.client.raw import RawClient, UnexpectedReply
from mcp_server.processes import ManagedProcess

CPU_PARTS = (
    ("service", "server CPU per call (web + worker)"),
    ("web", "web process CPU per call"),
    ("worker", "worker CPU per call"),
    ("redis", "Redis CPU per call"),
    ("postgres", "PostgreSQL backends' CPU per call"),
    ("client", "load generator CPU per call"),
    ("machine", "whole machine CPU per call"),
    ("other", "other processes' CPU per call (not this benchmark's)"),
)
SCALE_ROWS: list[Row] = [
    ("connections", "connections opened", "items", True),
    ("calls.ok", "results received, complete", "items", True),
    ("results_lost", "final results lost (no result: error or no response)", "items"),
    ("calls.failed", "of which error responses", "items"),
    ("no_response", "of which no response (timeout or socket closed)", "items"),
    ("calls.wrong", "results with a wrong count", "items"),
    ("calls.closed", "sockets closed by the server", "items"),
    ("calls.lost", "no response within the deadline", "items"),
    ("final_progress_missing", "final progress missing (last notification < total)", "items"),
    ("notifications", "progress notifications received", "items", True),
    ("open_s", "time to open and initialize the connections", "s"),
    ("all_done_s", "time from the calls to the last result", "s"),
    ("duration_p50_s", "call duration p50", "s"),
    ("duration_p99_s", "call duration p99", "s"),
    ("duration_max_s", "call duration max", "s"),
]


def postgres_backends(database_url: str) -> list[int]:
    """The process ids of the PostgreSQL backends serving the database of `database_url`."""
    with psycopg.connect(database_url, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


@dataclass(frozen=True)
class ClusterThroughput(Throughput):
    """Throughput with the CPU per call of each process of the deployment, of PostgreSQL's
    backends for `database_url`, of the load generator, the machine and everything else."""

    kind: ClassVar[str] = "cluster-throughput"
    database_url: str = ""

    def metrics(self) -> list[Metric]:
        c, rows = self.concurrency, self.rows()[:3]  # calls/s, p50, p99 as Throughput's
        rows += [(f"cpu_us_per_call.{part}", f"{text}, C={c}", "µs") for part, text in CPU_PARTS]
        busy = [("cpu_pct.machine", f"whole machine busy, C={c} (200 % = both CPUs)", "%")]
        return declare(f"c{c}", rows, CALLS) + declare(f"c{c}", busy)

    async def cpu_window(self, target: LoadTarget, start: float, end: float) -> tuple[Any, Any]:
        backends: list[int] = []
        if self.database_url:
            # Just before the window: the history writer's connection exists by then.
            await asyncio.sleep(max(0.0, start - 0.3 - time.perf_counter()))
            backends = await asyncio.to_thread(postgres_backends, self.database_url)

        def snapshot() -> dict[str, float]:
            parts = {name: cpu_seconds(pid) for name, pid in target.pids.items()}
            if backends:
                parts["postgres"] = sum(cpu_seconds(pid) for pid in backends)
            clocks = {"client": time.process_time(), "machine": busy_seconds()}
            return parts | clocks | {"at": time.perf_counter()}

        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        first = snapshot()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        return first, snapshot()

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Open the connections, call in a loop; calls/s, latency and the CPU of each part."""
        latencies, (before, after) = await self.load(target)
        rate = len(latencies) / self.window_s
        elapsed = after.pop("at") - before.pop("at")
        used = {name: after[name] - before[name] for name in before}
        # Whatever the machine did besides the processes accounted for: other load on the host.
        accounted = sum(v for k, v in used.items() if k != "machine")
        used["other"] = max(0.0, used["machine"] - accounted)
        used["service"] = used.get("web", math.nan) + used.get("worker", 0.0)
        per_call = [
            used.get(part, math.nan) / elapsed / rate * 1e6 if rate else math.nan
            for part, _ in CPU_PARTS
        ]
        values = [rate, percentile(latencies, 0.5) * 1e6, percentile(latencies, 0.99) * 1e6]
        return self.values(*values, *per_call, used["machine"] / elapsed * 100)


@dataclass(frozen=True)
class ProgressStream(Scenario):
    """Sequential `process_batch(count, item_ms)` calls with a progressToken; every
    notification's arrival, for the harness to match with Redis MONITOR."""

    kind: ClassVar[str] = "progress-stream"
    calls: int = 20
    warmup: int = 2
    count: int = 100
    item_ms: float = 10.0

    title: ClassVar[str] = "progress stream x{calls}"

    def metrics(self) -> list[Metric]:
        return declare(
            "stream",
            [("notifications", "progress notifications of the traced calls", "items", True)],
        )

    async def measure(self, target: LoadTarget) -> tuple[dict[str, float], dict[str, Any]]:
        client = await connect(target.url)
        arguments = {"count": self.count, "item_ms": self.item_ms}
        traces: list[dict[str, Any]] = []
        try:
            for index in range(self.warmup + self.calls):
                trace = await traced_call(client, "process_batch", arguments, f"stream-{index}")
                if trace.structured().get("processed") != self.count:
                    raise UnexpectedReply(f"call {index}: a wrong result {trace.reply!r:.300}")
                if index >= self.warmup:
                    traces.append({"sent": trace.sent, "done": trace.done, "notes": trace.notes})
        finally:
            await close_all([client])
        notes = float(sum(len(trace["notes"]) for trace in traces))
        return self.values(notes), {"calls": traces}


@dataclass(frozen=True)
class Outcome:
    """How one call of the scale scenario ended."""

    status: str  # ok, wrong, failed, closed, lost
    detail: str = ""
    last: float = math.nan  # the last progress seen
    duration: float = math.nan
    notes: int = 0


@dataclass(frozen=True)
class Scale(Scenario):
    """N connections spread over the web processes, each sending one `process_batch` with a
    progressToken at the same moment: how many results arrive, complete with final progress."""

    kind: ClassVar[str] = "scale"
    connections: int = 1000
    count: int = 200
    item_ms: float = 20.0
    deadline_s: float = 300.0
    slack_s: float = 120.0

    title: ClassVar[str] = "scale x{connections}"

    def metrics(self) -> list[Metric]:
        return declare("", SCALE_ROWS, SCALE)

    def timeout(self) -> float:
        return self.deadline_s + self.count * self.item_ms / 1000 + self.slack_s

    async def follow(self, client: Any, index: int, go: asyncio.Event) -> Outcome:
        """Wait for `go`, make the call, read it to its end."""
        await go.wait()
        began = time.monotonic()
        arguments = {"count": self.count, "item_ms": self.item_ms}
        try:
            trace = await traced_call(
                client, "process_batch", arguments, f"scale-{index}", within=self.deadline_s
            )
        except TimeoutError:
            return Outcome("lost")
        except ConnectionClosed as closed:
            return Outcome("closed", f"closed {closed.rcvd.code if closed.rcvd else 'no frame'}")
        last = trace.notes[-1][0] if trace.notes else math.nan
        took, seen = time.monotonic() - began, len(trace.notes)
        try:
            processed = trace.structured().get("processed")
        except UnexpectedReply:
            error = (trace.reply or {}).get("error") or {}
            return Outcome(
                "failed", str(error.get("message") or trace.reply)[:300], last, took, seen
            )
        return Outcome("ok" if processed == self.count else "wrong", "", last, took, seen)

    async def measure(self, target: LoadTarget) -> tuple[dict[str, float], dict[str, Any]]:
        started = time.perf_counter()
        clients = await open_many(target.urls, self.connections)
        open_s = time.perf_counter() - started
        go = asyncio.Event()
        try:
            followers = [asyncio.create_task(self.follow(c, i, go)) for i, c in enumerate(clients)]
            await asyncio.sleep(0)  # every follower waits for `go`
            began = time.monotonic()
            go.set()
            outcomes = await asyncio.gather(*followers)
            elapsed = time.monotonic() - began
        finally:
            await close_all(clients)
        count = Counter(o.status for o in outcomes)
        durations = [o.duration for o in outcomes if not math.isnan(o.duration)]
        missing = [
            f"{i}: last progress {o.last}"
            for i, o in enumerate(outcomes)
            if o.status == "ok" and o.last != self.count
        ]
        values = [
            float(len(clients)),
            count["ok"],
            len(outcomes) - count["ok"],
            count["failed"],
            count["lost"] + count["closed"],
            count["wrong"],
            count["closed"],
            count["lost"],
            len(missing),
            sum(o.notes for o in outcomes),
            open_s,
            elapsed,
            percentile(durations, 0.5),
            percentile(durations, 0.99),
            max(durations, default=math.nan),
        ]
        problems = Counter(
            f"{o.status}: {o.detail}" if o.detail else o.status
            for o in outcomes
            if o.status != "ok"
        )
        return self.values(*map(float, values)), {
            "problems": dict(problems),
            "final_missing": missing[:50],
        }


@dataclass(frozen=True)
class FanOutImages(ImagesPing):
    """`process_images` fanned out over a cluster's workers, pinged meanwhile on a second
    connection: images/s and ping latency (issue 12: 2 workers against 1)."""

    kind: ClassVar[str] = "fanout-images"
    targets: ClassVar[tuple[str, ...] | None] = None

    title: ClassVar[str] = "process_images x{images} over the workers, pinged"


FAILOVER_ROWS: list[Row] = [
    ("images", "images in the call", "items"),
    ("progress_at_kill", "images done when the other worker was killed", "items"),
    ("accounted", "images accounted for (succeeded + errors)", "items", True),
    ("errors", "errors in the summary", "items"),
    ("error_log", "entries in its error log (REST API)", "items"),
    ("rerun_chunks", "chunks re-run (its history message)", "items"),
    ("images_per_s", "images/s, the kill included", "images/s", True),
    ("images_after_kill_s", "kill -9 to the result", "s"),
    ("images_succeeded", "process_images history rows succeeded", "items", True),
    ("interrupted_s", "kill -9 of the last worker to the client's interrupted error", "s"),
    ("lost_after_s", "MCP_OPERATION_LOST_AFTER", "s"),
    ("batch_interrupted", "process_batch history rows interrupted", "items", True),
]
RERUN = re.compile(r"re-run after their worker was lost: chunks ([\d, ]+)")
ROW_WAIT_S = 30.0
EVERY_IMAGE = "kill -9 mid fan-out: every image accounted for"
WITHIN_BOUND = "kill -9 mid process_batch: interrupted within the bound"


@dataclass(frozen=True)
class Failover(Scenario):
    """`kill -9` of the worker that does not run a fanned-out `process_images` once a chunk is
    done: every image accounted for, its chunks re-run; then of the last worker mid
    `process_batch`: the client told `interrupted` within MCP_OPERATION_LOST_AFTER (issue 12)."""

    kind: ClassVar[str] = "failover"
    images: int
    directory: str
    database_url: str = ""
    lost_after: float = 6.0
    batch_count: int = 200
    batch_item_ms: float = 100.0  # 20 s of work: it outlives the bound

    title: ClassVar[str] = "kill -9 mid process_images x{images}, then mid process_batch"

    def metrics(self) -> list[Metric]:
        goals = {
            "accounted": (Goal(EVERY_IMAGE, self.images, True),),
            "interrupted_s": (Goal(WITHIN_BOUND, self.lost_after, False),),
        }
        return declare(self.kind, FAILOVER_ROWS, FAILOVER, goals)

    def timeout(self) -> float:
        return 120.0 + self.images / SLOWEST_IMAGES_PER_S + 3 * ROW_WAIT_S

    async def row(self, tool: str, since: float, ended: bool) -> dict[str, Any]:
        """The last operation of `tool` queued since `since` (epoch s) once it has `ended`,
        else once it runs: status, runner (host:pid), message."""

        def latest() -> dict[str, Any]:
            with psycopg.connect(self.database_url, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT status, runner, message FROM mcp_server_operation WHERE tool = %s "
                    "AND queued_at >= to_timestamp(%s) ORDER BY queued_at DESC LIMIT 1",
                    (tool, since - 1.0),  # room for the rounding of queued_at
                ).fetchone()
            return dict(zip(("status", "runner", "message"), row or ("", "", ""), strict=True))

        deadline = time.monotonic() + ROW_WAIT_S
        while (row := await asyncio.to_thread(latest))["status"] in ("", "queued", "running"):
            if not ended and row["status"] == "running" and row["runner"]:
                return row
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tool}: its history row stayed {row!r:.300}")
            await asyncio.sleep(0.05)
        return row

    async def kill_at_progress(
        self, client: RawClient, workers: set[int], tool: str, arguments: dict[str, Any]
    ) -> tuple[CallTrace, int, dict[str, float]]:
        """Call `tool`; at a progress > 0 SIGKILL the group (as ManagedProcess.kill: with its
        pool) of the one of `workers` that does not run it. The trace, the pid killed, and
        the kill's time.time() and the progress then."""
        victim, kill = 0, dict[str, float]()

        def see(params: dict[str, Any]) -> None:
            if params["progress"] > 0 and victim and not kill:
                os.killpg(victim, signal.SIGKILL)
                kill.update(at=time.time(), progress=float(params["progress"]))

        sent, since = asyncio.Event(), time.time()
        call = asyncio.create_task(traced_call(client, tool, arguments, tool, see, sent))
        await sent.wait()
        if len(workers) > 1:
            runner = (await self.row(tool, since, ended=False))["runner"]
            workers = workers - {int(runner.rsplit(":", 1)[1])}
        (victim,) = workers
        trace = await call
        if not kill:
            raise UnexpectedReply(f"{tool} ended before a worker was killed: {trace.reply!r:.300}")
        return trace, victim, kill

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """The fan-out with a worker killed, then process_batch with the other killed."""
        client, workers = await connect(target.url), set(target.pids.values())
        try:
            images, victim, kill = await self.kill_at_progress(
                client, workers, "process_images", {"directory": self.directory}
            )
            arguments = {"count": self.batch_count, "item_ms": self.batch_item_ms}
            batch, _, last = await self.kill_at_progress(
                client, workers - {victim}, "process_batch", arguments
            )
        finally:
            await close_all([client])
        summary, row = images.structured(), await self.row("process_images", images.sent, True)
        error_log: list[Any] = []
        if summary.get("error_log"):
            url = urljoin(target.http_url or "", summary["error_log"])
            headers = {"Authorization": f"Bearer {target.bearer}"}
            async with http_client() as http, http.get(url, headers=headers) as response:
                response.raise_for_status()
                error_log = await response.json(content_type=None)
        rerun = RERUN.search(row["message"])
        told = ((batch.reply or {}).get("error") or {}).get("data", {}).get("status")
        values = [
            float(summary["total"]),
            kill["progress"],
            float(summary["succeeded"] + summary["errors"]),
            float(summary["errors"]),
            float(len(error_log)),
            float(len(rerun.group(1).split(","))) if rerun else 0.0,
            summary["total"] / (images.done - images.sent),
            images.done - kill["at"],
            float(row["status"] == "succeeded"),
            batch.done - last["at"] if told == "interrupted" else math.nan,
            self.lost_after,
            float((await self.row("process_batch", batch.sent, True))["status"] == "interrupted"),
        ]
        return self.values(*values)


RANDOM_PREFIX_LENGTH = 12  # channels-redis puts 12 random bytes before each message
READY_TIMEOUT = 10.0
_LINE = re.compile(rb"^(\d+\.\d+) \[(\d+) ([^\]]+)\] (.*)$")
_ARGUMENT = re.compile(rb'"((?:[^"\\]|\\.)*)"')
HOP = "progress hop worker -> client"
HOP_ROWS = [
    ("p50_us", f"{HOP}, p50", "µs"),
    ("p99_us", f"{HOP}, p99", "µs"),
    ("max_us", f"{HOP}, max", "µs"),
    ("sending_p50_us", "of which the worker's send until stored in Redis, p50", "µs"),
    ("in_redis_p50_us", "of which waiting in Redis for the web process, p50", "µs"),
    ("to_client_p50_us", "of which web process taking it -> client, p50", "µs"),
    ("to_client_p99_us", "of which web process taking it -> client, p99", "µs"),
]
COUNT_ROWS = [
    ("matched", "progress notifications traced", "items", True),
    ("unmatched", "progress notifications not found in the monitor", "items"),
]
# The hop's times go to the progress table; the counts only to each repetition's.
HOP_METRICS = declare("hop", HOP_ROWS, PROGRESS) + declare("hop", COUNT_ROWS)


@dataclass(frozen=True)
class ProgressSend:
    """One `operation.progress` message through Redis, with the moments the monitor saw."""

    progress: float
    send_started: float  # ZREMRANGEBYSCORE of the same sender on the same key (Redis time)
    sender_time: float  # the ZADD's score: the sender's time.time() just before the ZADD
    stored: float  # the ZADD executed (Redis time)
    taken: float | None  # the receiver's ZADD to key$inflight after BZPOPMIN (Redis time)


def redis_cli_path() -> str | None:
    """`redis-cli`, if installed."""
    return shutil.which("redis-cli")


def _message(member: bytes) -> dict[str, Any] | None:
    try:
        message = msgpack.unpackb(member[RANDOM_PREFIX_LENGTH:], raw=False)
    except Exception:
        return None  # not a channels-redis message
    return message if isinstance(message, dict) else None


def parse_progress_sends(path: Path, prefix: str, db: int) -> list[ProgressSend]:
    """Every `operation.progress` message sent under `prefix` in database `db`, in order."""
    started: dict[tuple[bytes, bytes], float] = {}
    taken: dict[bytes, float] = {}
    pending: list[tuple[float, float, float, float, bytes]] = []
    with path.open("rb") as lines:
        for raw in lines:
            match = _LINE.match(raw.rstrip(b"\r\n"))
            if match is None or int(match.group(2)) != db:
                continue
            at, client = float(match.group(1)), match.group(3)
            arguments = [codecs.escape_decode(a)[0] for a in _ARGUMENT.findall(match.group(4))]
            if len(arguments) < 2 or not arguments[1].startswith(prefix.encode()):
                continue
            command, key = arguments[0].upper(), arguments[1]
            if command == b"ZREMRANGEBYSCORE":
                started[(client, key)] = at
            elif command == b"ZADD" and len(arguments) >= 4:
                if key.endswith(b"$inflight"):
                    taken.setdefault(arguments[3], at)
                elif (message := _message(arguments[3])) and message.get(
                    "type"
                ) == "operation.progress":
                    progress = float(message.get("progress") or 0.0)
                    began = started.get((client, key), at)
                    pending.append((progress, began, float(arguments[2]), at, arguments[3]))
    return [
        ProgressSend(p, began, score, at, taken.get(member))
        for p, began, score, at, member in pending
    ]


def hop_metrics(sends: list[ProgressSend], calls: list[dict[str, Any]]) -> dict[str, float]:
    """Match each notification the client got with the Redis send of the same progress in the
    same call; the hop's percentiles from the start of the send, and where the time went."""
    total: list[float] = []
    sending: list[float] = []
    in_redis: list[float] = []
    to_client: list[float] = []
    unmatched = 0
    for call in calls:
        window = [s for s in sends if call["sent"] - 0.005 <= s.sender_time <= call["done"]]
        by_progress = {send.progress: send for send in window}  # Redis order: the latest wins
        for progress, arrived in call["notes"]:
            match = by_progress.get(float(progress))
            if match is None or match.send_started > arrived:
                unmatched += 1
                continue
            total.append(arrived - match.send_started)
            sending.append(match.stored - match.send_started)
            if match.taken is not None:
                in_redis.append(match.taken - match.stored)
                to_client.append(arrived - match.taken)
    values = [percentile(total, 0.5), percentile(total, 0.99), max(total, default=math.nan)]
    values += [percentile(sending, 0.5), percentile(in_redis, 0.5)]
    values += [percentile(to_client, 0.5), percentile(to_client, 0.99)]
    values = [value * 1e6 for value in values] + [float(len(total)), float(unmatched)]
    return {metric.key: value for metric, value in zip(HOP_METRICS, values, strict=True)}


@contextlib.contextmanager
def monitoring(redis_url: str, output: Path) -> Iterator[Path]:
    """Run `redis-cli monitor` into `output` for the duration of the block."""
    cli = redis_cli_path()
    if cli is None:
        raise RuntimeError("redis-cli is not installed")
    command = [cli, "-u", redis_url, "monitor"]
    monitor = ManagedProcess.start(
        "redis-cli", command, env=os.environ, log_path=output, benchmark=True
    )
    try:
        # redis-cli prints OK once it monitors.
        monitor.wait_ready(lambda: output.stat().st_size > 0, what="OK", timeout=READY_TIMEOUT)
        yield output
        time.sleep(0.3)  # the last lines still on their way to the file
    finally:
        monitor.stop(5.0)
