"""What the load generator measures, and the client steps the scenarios are made of.

A scenario is a frozen dataclass: its fields are its parameters (sent to the load generator as
JSON), `metrics()` declares every number it reports with its goals, `run()` measures."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from websockets.exceptions import ConnectionClosed

from bench.measure import CpuSample, percentile, rss_kib, settled
from bench.report import MODERN, PROGRESS, SUMMARY, Goal, Goals, Metric, Row, declare
from mcp_server.client import wire
from mcp_server.client.raw import RawClient, UnexpectedReply, expect_result
from mcp_server.client.wire import request_frame, tool_call_params

CLIENT_NAME = "mcp-bench"
OPEN_CONCURRENCY = 50
SOCKET = {"open_timeout": 30.0, "ping_interval": None}  # no keepalive pings of its own
RSS_SETTLE = (0.1, 3.0)  # read every 0.1 s until it stops moving, at most 3 s
SERVICE_ONLY = ("service",)
META: wire.JsonObject = wire.request_meta(CLIENT_NAME, "1.0")  # a 2026-07-28 client's _meta


@dataclass(frozen=True)
class LoadTarget:
    """The deployment as the load generator sees it: its endpoints and processes (`server`
    for a single process), the CPU it is pinned to, an endpoint as a caller of a second
    tenant, the Streamable HTTP endpoint and its bearer token (None: no auth)."""

    urls: list[str]
    pids: dict[str, int]
    server_cpu: int | None = None
    peer_url: str | None = None
    http_url: str | None = None
    bearer: str | None = None

    @property
    def url(self) -> str:
        """The (first) MCP endpoint."""
        return self.urls[0]

    @property
    def server_pid(self) -> int:
        """The server of a single-process target."""
        return self.pids["server"]

    def rss(self) -> int:
        """The server's RSS in KiB."""
        return rss_kib(self.server_pid)

    def cpu(self) -> CpuSample:
        """The server's, this process's and the server CPU's cumulative CPU times."""
        return CpuSample.take(self.server_pid, self.server_cpu)


SCENARIOS: dict[str, type[Scenario]] = {}  # by kind: what the load generator can run


class Scenario(ABC):
    """A measurement the load generator runs against one deployment, returning named numbers."""

    kind: ClassVar[str]
    title: ClassVar[str]
    targets: ClassVar[tuple[str, ...] | None] = None  # the target keys it measures (None: all)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            SCENARIOS[cls.kind] = cls

    def applies_to(self, target_key: str) -> bool:
        """Whether the plan runs this scenario against the target called `target_key`."""
        return self.targets is None or target_key in self.targets

    @property
    def label(self) -> str:
        """A unique name within a plan: `title` with the parameters, e.g. `throughput C=50`."""
        return self.title.format(**vars(self))

    @abstractmethod
    def metrics(self) -> list[Metric]:
        """The metrics `run` returns, in display order."""

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Measure; return a value for each metric key. Raise on any wrong reply."""
        return (await self.measure(target))[0]

    def timeout(self) -> float:
        """Seconds after which the harness gives up on the load generator."""
        return 240.0

    async def measure(self, target: LoadTarget) -> tuple[dict[str, float], dict[str, Any]]:
        """`run`, checked to report every metric it declares; samples for the harness (none)."""
        metrics = await self.run(target)
        if missing := {metric.key for metric in self.metrics()} - metrics.keys():
            raise RuntimeError(f"{self.label} did not report {sorted(missing)}")
        return metrics, {}

    def params(self) -> dict[str, Any]:
        """The parameters, as JSON for the load generator's command line."""
        return dict(vars(self))

    def values(self, *values: float) -> dict[str, float]:
        """Values in the order of the declared metrics, by key."""
        return {metric.key: value for metric, value in zip(self.metrics(), values, strict=True)}


# --- client steps --------------------------------------------------------------------------


async def connect(url: str, *, initialize: bool = True) -> RawClient:
    """A connection as every load generator opens it."""
    return await RawClient.open(url, initialize=initialize, client_name=CLIENT_NAME, **SOCKET)


def call_frame(request_id: int, name: str, arguments: Any, token: str | None = None) -> str:
    """A `tools/call` frame, with a progressToken when given."""
    return wire.request_frame(
        request_id, "tools/call", wire.tool_call_params(name, arguments, token)
    )


async def call_add(client: RawClient, meta: wire.JsonObject | None = None) -> None:
    """One `tools/call` of `add` (1 + 2), its reply read and checked: the hot loops' step;
    with `meta`, a 2026-07-28 request carrying it."""
    request_id = client.next_id()
    params = tool_call_params("add", {"a": 1, "b": 2})
    if meta is not None:
        params = wire.with_request_meta(params, meta)
    await client.ws.send(request_frame(request_id, "tools/call", params))
    raw = await client.ws.recv()
    structured = expect_result(raw, request_id).get("structuredContent")
    if not isinstance(structured, dict) or structured.get("result") != 3:
        raise UnexpectedReply(f"unexpected add result for id {request_id}: {raw!r:.300}")


async def ping(client: RawClient) -> None:
    """One `ping`, its empty result read and checked."""
    request_id = client.next_id()
    await client.ws.send(request_frame(request_id, "ping", {}))
    expect_result(await client.ws.recv(), request_id)


async def open_many(
    urls: Sequence[str],
    count: int,
    parallel: int = OPEN_CONCURRENCY,
    opened: list[float] | None = None,
    initialize: bool = True,
) -> list[RawClient]:
    """`count` connections (initialized, unless not `initialize`), the i-th to
    `urls[i % len(urls)]`, `parallel` handshakes at a time, all or none; the `perf_counter`
    instant each was ready goes to `opened`."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> RawClient:
        async with gate:
            client = await connect(urls[index % len(urls)], initialize=initialize)
        if opened is not None:
            opened.append(time.perf_counter())
        return client

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    clients = [result for result in results if isinstance(result, RawClient)]
    if failures := [result for result in results if isinstance(result, BaseException)]:
        await close_all(clients)
        raise RuntimeError(f"{len(failures)} of {count} connections failed") from failures[0]
    return clients


async def close_all(clients: Sequence[RawClient]) -> None:
    """Close connections concurrently, ignoring the ones already broken."""

    async def one(client: RawClient) -> None:
        with contextlib.suppress(Exception):
            await client.close()

    await asyncio.gather(*(one(client) for client in clients))


@contextlib.asynccontextmanager
async def connections(*urls: str) -> AsyncIterator[list[RawClient]]:
    """One initialized connection to each URL for the block, closed after it."""
    clients: list[RawClient] = []
    try:
        for url in urls:
            clients.append(await connect(url))
        yield clients
    finally:
        await close_all(clients)


@dataclass
class Pings:
    """What a pinging client saw: each reply's latency (s), and the `add` calls answered."""

    latencies: list[float] = field(default_factory=list)
    calls: int = 0


async def ping_until(
    client: RawClient,
    stop: asyncio.Event,
    interval_s: float = 0.0,
    add_every: int = 0,
    limit: float | None = None,
) -> Pings:
    """Ping every `interval_s` (back to back for 0; every `add_every`-th request an `add` call;
    a reply slower than `limit` s fails) until `stop`; the request in flight then counts too."""
    seen = Pings()
    while not stop.is_set():
        sent = time.perf_counter()
        calling = add_every and (len(seen.latencies) + 1) % add_every == 0
        await asyncio.wait_for(call_add(client) if calling else ping(client), limit)
        seen.calls += bool(calling)
        seen.latencies.append(time.perf_counter() - sent)
        if (pause := sent + interval_s - time.perf_counter()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
    return seen


def latency_summary(latencies: Sequence[float], scale: float) -> tuple[float, float, float]:
    """p50, p99 and max, times `scale` (1e3 for ms, 1e6 for µs)."""
    top = max(latencies, default=math.nan)
    return percentile(latencies, 0.5) * scale, percentile(latencies, 0.99) * scale, top * scale


@dataclass
class CallTrace:
    """One `tools/call` as the client saw it: wall-clock times (`time.time()`, the clock
    Redis MONITOR shows) of the request, of each progress notification, and of the reply."""

    sent: float
    notes: list[tuple[float, float]] = field(default_factory=list)  # (progress, at)
    done: float = math.nan
    reply: dict[str, Any] | None = None

    def structured(self) -> dict[str, Any]:
        """The result's structuredContent ({} when absent); UnexpectedReply for an error."""
        result = (self.reply or {}).get("result")
        if not isinstance(result, dict) or result.get("isError"):
            raise UnexpectedReply(f"the call failed: {self.reply!r:.500}")
        value = result.get("structuredContent")
        return value if isinstance(value, dict) else {}


async def traced_call(
    client: RawClient,
    name: str,
    arguments: Any,
    token: str | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    sent: asyncio.Event | None = None,
    within: float | None = None,
) -> CallTrace:
    """Send one call and read until its reply, answering the server's pings on the way.
    Progress for another token fails it; TimeoutError after `within` s without the reply."""
    request_id = client.next_id()
    deadline = math.inf if within is None else time.monotonic() + within
    trace = CallTrace(sent=time.time())
    await client.ws.send(call_frame(request_id, name, arguments, token))
    if sent is not None:
        sent.set()
    while True:
        if (left := deadline - time.monotonic()) <= 0:
            raise TimeoutError
        raw = await asyncio.wait_for(client.ws.recv(), None if within is None else left)
        at, message = time.time(), orjson.loads(raw)
        method = message.get("method")
        if method == "notifications/progress":
            params = message.get("params") or {}
            if params.get("progressToken") != token:
                raise UnexpectedReply(f"progress for another token than {token!r}: {raw!r:.300}")
            trace.notes.append((float(params["progress"]), at))
            if on_progress is not None:
                on_progress(params)
        elif method == "ping" and "id" in message:
            await client.answer_ping(message)
        elif method is None and message.get("id") == request_id:
            trace.done, trace.reply = at, message
            return trace
        # Any other notification (a log message) is not ours to judge.


async def sleep_until(instant: float) -> None:
    """Sleep until the `perf_counter` instant."""
    await asyncio.sleep(max(0.0, instant - time.perf_counter()))


# --- the foundation scenarios --------------------------------------------------------------

CPU_GOAL = "calls per server CPU-second at C=50, vs"
THROUGHPUT_GOALS: dict[int, Goals] = {
    50: {
        "calls_per_s": (
            Goal("calls/s at C=50, vs the SDK", 5.0, True, baseline="sdk"),
            Goal("calls/s at C=50, vs raw websockets", 0.15, True, baseline="raw"),
        ),
        # Per unit of server CPU: on a shared machine other processes take CPU time from the
        # servers unevenly; this ratio does not care.
        "cpu_us_per_call": (
            Goal(f"{CPU_GOAL} the SDK", 5.0, True, "sdk", True, True),
            Goal(f"{CPU_GOAL} raw", 0.15, True, "raw", True, True),
        ),
    },
    1: {"p50_us": (Goal("p50 latency at C=1, vs raw websockets", 3.0, False, baseline="raw"),)},
}


def envelope_goals(prefix: str, what: str, bound: float = 10.0) -> dict[int, Goals]:
    """The 2026-07-28 calls' overheads (the issue's bound: the per-request `_meta` costs at
    most 10 %) against the handshake era's metrics `prefix<C>.*` of the same server."""
    goals: dict[int, dict[str, tuple[Goal, ...]]] = {50: {}, 1: {}}
    for c, key, text, at_least in (
        (50, "cpu_us_per_call", "server CPU per call at C=50, over", False),
        (50, "calls_per_s", "calls/s at C=50, against", True),
        (1, "p50_us", "p50 latency at C=1, over", False),
    ):
        label = f"2026-07-28 over {what}: {text} the handshake era's"
        goals[c][key] = (
            Goal(label, -bound if at_least else bound, at_least, reference=f"{prefix}{c}.{key}"),
        )
    return dict(goals)


@dataclass(frozen=True)
class Throughput(Scenario):
    """C connections each doing back-to-back `tools/call add`: calls/s, latency, CPU."""

    kind: ClassVar[str] = "throughput"
    concurrency: int
    warmup_s: float = 1.0
    window_s: float = 3.0

    title: ClassVar[str] = "throughput C={concurrency}"
    # Metric keys `<prefix><C>.<name>`, labels `<label_prefix>calls/s, C=<C>`; the headline
    # metrics go to the report's `section`, with the `goals` for their concurrency.
    prefix: ClassVar[str] = "throughput.c"
    label_prefix: ClassVar[str] = ""
    section: ClassVar[str] = SUMMARY
    goals: ClassVar[dict[int, Goals]] = THROUGHPUT_GOALS
    # The per-request `_meta` of a 2026-07-28 client (None: the handshake era's calls).
    request_meta: ClassVar[wire.JsonObject | None] = None

    def rows(self) -> list[Row]:
        """calls/s, p50 and p99 latency, and where the CPU went, at this concurrency."""
        c, at = self.concurrency, self.label_prefix
        return [
            ("calls_per_s", f"{at}calls/s, C={c}", "calls/s", True),
            ("p50_us", f"{at}p50 latency, C={c}", "µs"),
            ("p99_us", f"{at}p99 latency, C={c}", "µs"),
            ("cpu_us_per_call", f"{at}server CPU per call, C={c}", "µs"),
            ("server_cpu_pct", f"{at}server CPU, C={c}", "%"),
            ("client_cpu_pct", f"{at}load generator CPU, C={c}", "%"),
            ("foreign_cpu_pct", f"{at}other processes on the server's CPU, C={c}", "%"),
        ]

    def metrics(self) -> list[Metric]:
        """The rows; the headline ones in the report's `section` with their goals."""
        c, rows, prefix = self.concurrency, self.rows(), f"{self.prefix}{self.concurrency}"
        summary = 4 if c == 50 else 3  # the CPU per call is a headline figure at C=50
        headline = declare(prefix, rows[:summary], self.section, self.goals.get(c, {}))
        return headline + declare(prefix, rows[summary:])

    def timeout(self) -> float:
        return self.warmup_s + self.window_s + 60.0 + self.concurrency * 0.1

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Open the connections, then call in a loop; count what completes in the window."""
        latencies, (first, last) = await self.load(target)
        server, client, foreign = first.until(last)
        rate = len(latencies) / self.window_s
        per_call = server / 100 / rate * 1e6 if rate else math.nan
        p50, p99, _ = latency_summary(latencies, 1e6)
        return self.values(rate, p50, p99, per_call, server, client, foreign)

    async def load(self, target: LoadTarget) -> tuple[list[float], tuple[Any, Any]]:
        """Back-to-back calls on every connection; the latencies in the window, CPU readings."""
        modern = self.request_meta is not None
        clients = await open_many(target.urls, self.concurrency, initialize=not modern)
        step = functools.partial(call_add, meta=self.request_meta)
        try:
            return await self.loops(target, [functools.partial(step, c) for c in clients])
        finally:
            await close_all(clients)

    async def loops(
        self, target: LoadTarget, steps: Sequence[Callable[[], Awaitable[None]]]
    ) -> tuple[list[float], tuple[Any, Any]]:
        """Each step back to back after the warm-up; the latencies in the window, CPU readings."""
        start = time.perf_counter() + self.warmup_s
        end = start + self.window_s
        window = asyncio.create_task(self.cpu_window(target, start, end))
        per_client = await asyncio.gather(*(call_loop(step, start, end) for step in steps))
        return [sample for samples in per_client for sample in samples], await window

    async def cpu_window(self, target: LoadTarget, start: float, end: float) -> tuple[Any, Any]:
        """CPU readings at two `perf_counter` instants (sleeps until each)."""
        await sleep_until(start)
        first = target.cpu()
        await sleep_until(end)
        return first, target.cpu()


@dataclass(frozen=True)
class ModernThroughput(Throughput):
    """C sockets that never initialize, each doing back-to-back 2026-07-28 `tools/call add`
    (this service and its variants only: the others speak only the handshake era)."""

    kind: ClassVar[str] = "modern-throughput"
    title: ClassVar[str] = "2026-07-28 throughput C={concurrency}"
    prefix: ClassVar[str] = "modern.c"
    label_prefix: ClassVar[str] = "2026-07-28 "
    section: ClassVar[str] = MODERN
    goals: ClassVar[dict[int, Goals]] = envelope_goals(Throughput.prefix, "WebSocket")
    request_meta: ClassVar[wire.JsonObject | None] = META

    def applies_to(self, target_key: str) -> bool:
        """This service and its variants (metrics or history off)."""
        return target_key.startswith("service")


async def call_loop(
    step: Callable[[], Awaitable[None]], window_start: float, window_end: float
) -> list[float]:
    """`step` back to back until one ends after `window_end`; the latencies of the steps that
    ended inside the window (after `window_start`)."""
    latencies: list[float] = []
    while True:
        sent = time.perf_counter()
        await step()
        if (done := time.perf_counter()) >= window_end:
            return latencies
        if done >= window_start:
            latencies.append(done - sent)


@dataclass(frozen=True)
class ConnectInitialize(Scenario):
    """Sequential connections: time from opening TCP to the `initialize` result."""

    kind: ClassVar[str] = "connect"
    count: int = 200

    title: ClassVar[str] = "connect+initialize x{count}"

    def metrics(self) -> list[Metric]:
        """p50 and p99 of connect+initialize."""
        p50 = declare(self.kind, [("p50_us", "connect+initialize p50", "µs")], SUMMARY)
        return p50 + declare(self.kind, [("p99_us", "connect+initialize p99", "µs")])

    def timeout(self) -> float:
        return 60.0 + self.count * 0.1

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Connect, initialize, close; one connection at a time."""
        samples: list[float] = []
        params = wire.initialize_params(CLIENT_NAME, "1.0")
        initialize = wire.request_frame(1, "initialize", params)
        for _ in range(self.count):
            started = time.perf_counter()
            client = await connect(target.url, initialize=False)
            try:
                await client.ws.send(initialize)
                expect_result(await client.ws.recv(), 1)
                samples.append(time.perf_counter() - started)
                await client.ws.send(wire.INITIALIZED)
            finally:
                await client.close()
        return self.values(*latency_summary(samples, 1e6)[:2])


# The call of the first-progress scenarios: (first progress, reply) seconds after sending it.
Caller = Callable[[str], Awaitable[tuple[float, float]]]
FIRST_ARGUMENTS = {"count": 1, "item_ms": 0}


@dataclass(frozen=True)
class FirstProgress(Scenario):
    """Sequential `process_batch(count=1, item_ms=0)` calls with a progressToken: time from
    sending the call to its only progress notification, and to its reply."""

    kind: ClassVar[str] = "first-progress"
    calls: int = 200
    warmup: int = 20

    title: ClassVar[str] = "first progress x{calls}"
    prefix: ClassVar[str] = "fp"
    label_prefix: ClassVar[str] = ""
    section: ClassVar[str] = PROGRESS

    def metrics(self) -> list[Metric]:
        """p50 and p99 of the first progress and of the reply."""
        first, response = "first progress after sending tools/call", "response of process_batch"
        parts = (("first", first), ("response", f"{response}(count=1)"))
        rows = [
            (f"{key}_{p}_us", f"{self.label_prefix}{what}, {p}", "µs")
            for key, what in parts
            for p in ("p50", "p99")
        ]
        return declare(self.prefix, rows, self.section)

    @contextlib.asynccontextmanager
    async def caller(self, target: LoadTarget) -> AsyncIterator[Caller]:
        """One connection's call of the scenario, for a progress token."""
        async with connections(target.url) as (client,):

            async def call(token: str) -> tuple[float, float]:
                trace = await traced_call(client, "process_batch", FIRST_ARGUMENTS, token)
                if not trace.notes or trace.structured().get("processed") != 1:
                    raise UnexpectedReply(f"{token}: no progress or {trace.reply!r:.300}")
                return trace.notes[0][1] - trace.sent, trace.done - trace.sent

            yield call

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """The calls one after the other, the warm-up's not counted."""
        first: list[float] = []
        reply: list[float] = []
        async with self.caller(target) as call:
            for index in range(self.warmup + self.calls):
                to_first, to_reply = await call(f"first-{index}")
                if index >= self.warmup:
                    first.append(to_first)
                    reply.append(to_reply)
        return self.values(*(percentile(s, p) * 1e6 for s in (first, reply) for p in (0.5, 0.99)))


@dataclass(frozen=True)
class IdleMemory(Scenario):
    """Server RSS growth per idle initialized connection."""

    kind: ClassVar[str] = "idle"
    connections: int = 1000

    title: ClassVar[str] = "idle memory x{connections}"

    def metrics(self) -> list[Metric]:
        goals = {"kib_per_conn": (Goal("KiB per idle connection", 40.0, at_least=False),)}
        per_conn = declare(
            self.kind, [("kib_per_conn", "KiB per idle connection", "KiB")], SUMMARY, goals
        )
        rest = [("rss_before_mib", "server RSS before", "MiB")]
        return per_conn + declare(
            self.kind, [*rest, ("open_s", f"time to open {self.connections}", "s")]
        )

    def timeout(self) -> float:
        return 60.0 + self.connections * 0.05  # 50 ms per connection plus a minute

    async def run(self, target: LoadTarget) -> dict[str, float]:
        before = await settled(target.rss, *RSS_SETTLE)
        started = time.perf_counter()
        clients = await open_many(target.urls, self.connections)
        opened = time.perf_counter() - started
        try:
            after = await settled(target.rss, *RSS_SETTLE)
        finally:
            await close_all(clients)
        return self.values((after - before) / self.connections, before / 1024, opened)


@dataclass(frozen=True)
class QueueCancelPing(Scenario):
    """Issue 10: one tenant queues `count` long `sleep` calls on a connection (all but the few
    its limit runs wait in the fair queue), then disconnects, which cancels every one; another
    tenant pings back to back all along. Its ping latency while they queue and after."""

    kind: ClassVar[str] = "queue-cancel"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    count: int = 10_000
    after_s: float = 3.0  # how long the pings go on after the disconnect
    sleep_s: float = 3600  # longer than the scenario: no call ends by itself

    title: ClassVar[str] = "ping while {count} queued calls are cancelled"

    def metrics(self) -> list[Metric]:
        """Ping p50, p99 and max after the disconnect and while the calls queue."""
        phases = (("cancel", "after the disconnect"), ("queue", "while the calls queue"))
        rows = [
            (f"{k}.{s}_ms", f"ping {s} {when}", "ms")
            for k, when in phases
            for s in ("p50", "p99", "max")
        ]
        return declare(self.kind, [*rows, ("queue_s", f"time to queue {self.count} calls", "s")])

    def timeout(self) -> float:
        return 600.0 + self.after_s

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Queue the calls on one tenant's connection, disconnect; ping from another tenant."""
        if target.peer_url is None:
            raise RuntimeError(f"{self.label} needs a second tenant (--peer-url)")
        flooder, prober = await connect(target.url), await connect(target.peer_url)
        stop = asyncio.Event()
        pings = asyncio.create_task(ping_until(prober, stop))
        try:
            started = time.perf_counter()
            for _ in range(self.count):
                await flooder.ws.send(
                    call_frame(flooder.next_id(), "sleep", {"seconds": self.sleep_s})
                )
            await ping(flooder)  # frames of a connection are handled in order: all were read
            queue_s = time.perf_counter() - started
            stop.set()
            queueing = (await pings).latencies
            stop = asyncio.Event()
            pings = asyncio.create_task(ping_until(prober, stop))
            await flooder.close()
            await asyncio.sleep(self.after_s)  # the span measured, not a wait for an event
            stop.set()
            cancelling = (await pings).latencies
        finally:
            pings.cancel()
            await close_all([flooder, prober])
        return self.values(
            *latency_summary(cancelling, 1e3), *latency_summary(queueing, 1e3), queue_s
        )


@dataclass(frozen=True)
class UnreadReplies(Scenario):
    """Issue 10: a connection leaves `calls` echo replies of 800 KiB unread; the server's
    outbound bound closes it. Its RSS before, at the peak and once settled after the close."""

    kind: ClassVar[str] = "unread"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    calls: int = 100
    reply_kib: int = 800
    settle_s: float = 15.0  # the close, its grace and the memory release after it

    title: ClassVar[str] = "unread replies x{calls}"

    def metrics(self) -> list[Metric]:
        rows: list[Row] = [
            ("rss_before_mib", "server RSS before", "MiB"),
            ("rss_peak_mib", "server RSS at its peak", "MiB"),
            ("rss_after_mib", "server RSS after the close", "MiB"),
            ("closed", "closed by the server (1 yes, 0 no)", "", True),
        ]
        return declare(self.kind, rows)

    def timeout(self) -> float:
        return 120.0 + self.calls * 0.5  # sending, the close and the settling, generously

    async def run(self, target: LoadTarget) -> dict[str, float]:
        before = peak = await settled(target.rss, *RSS_SETTLE)
        text = "x" * (self.reply_kib * 1024)
        client = await connect(target.url)
        try:
            client.ws.transport.pause_reading()
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                for _ in range(self.calls):
                    frame = call_frame(client.next_id(), "echo", {"text": text})
                    await asyncio.wait_for(client.ws.send(frame), self.settle_s * 2)
                    peak = max(peak, target.rss())
            deadline = time.monotonic() + self.settle_s
            while client.close_code is None and time.monotonic() < deadline:
                peak = max(peak, target.rss())
                await asyncio.sleep(RSS_SETTLE[0])  # sampling the peak meanwhile
            closed = client.close_code is not None
        finally:
            client.ws.transport.abort()
        after = await settled(target.rss, 1.0, self.settle_s)
        return self.values(before / 1024, peak / 1024, after / 1024, float(closed))
