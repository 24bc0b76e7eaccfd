"""Hand-off engines side by side: the channel layer, Redis Streams (ours), and saq.

`python bench/dispatch_engines.py` (under `flock /tmp/bench.lock`); the method is in
docs/BENCHMARKS.md (Worker dispatch on Redis Streams)."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import redis
import redis.asyncio
import uvloop
from channels_redis.core import RedisChannelLayer

from bench.measure import median, percentile, process_cpu_seconds
from bench.report import table
from mcp_server.processes import ManagedProcess

ENGINES = ("channels", "streams", "saq")
WORK_CHANNEL = "bench-dispatch-work"
WORKER_SLOTS = 100


# An `operation.start` as a trivial call's hand-off carries it (`id`, `listener` and the
# principal's `user_id` set for each).
PRINCIPAL: dict[str, Any] = {
    "username": "bench",
    "tenant_id": 1,
    "tenant_slug": "bench",
    "is_tenant_admin": False,
}
PRINCIPAL |= {"enabled_tools": None, "token_id": 1, "disabled_tools": []}
PRINCIPAL |= {"limits": {"in_flight_per_connection": 64}}
START: dict[str, Any] = {
    "type": "operation.start",
    "tool": "add",
    "arguments": {"a": 1, "b": 2},
    "inputs": None,
}
START |= {"connection_id": "specific.bench!abc", "request_id": 1, "progress_token": None}
START |= {"queued_at": "2026-12-01T00:00:00+00:00", "is_task": False, "task_ttl": None}
START |= {"traceparent": None, "asks_through_task": False, "client_capabilities": {}}


def _message(listener: str) -> dict[str, Any]:
    """A fresh hand-off whose result goes to `listener`."""
    principal = PRINCIPAL | {"user_id": 1 + secrets.randbelow(3)}
    return START | {"id": str(uuid.uuid4()), "principal": principal, "listener": listener}


def _layer(url: str, prefix: str) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[{"address": url}], prefix=prefix, capacity=100_000)


def _dispatch(url: str, prefix: str) -> Any:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from mcp_server.cluster.dispatch import Dispatch

    client = redis.asyncio.Redis.from_url(url, socket_timeout=None)
    return Dispatch(client, prefix=prefix, queue_bound=1_000_000)


def _saq_queue(url: str, prefix: str) -> Any:
    from saq.queue.redis import RedisQueue

    # redis-py's pool stops at 100 connections by default, below a worker of 100 slots.
    client = redis.asyncio.Redis.from_url(url, max_connections=1000)
    return RedisQueue(client, name=prefix, max_concurrent_ops=1000)


# --- workers (a process of their own) -------------------------------------------------------
def _ready() -> None:
    """Tell the submitter this worker takes work now."""
    print("ready", flush=True)


async def _work_channels(url: str, prefix: str) -> None:
    layer = _layer(url, prefix)
    _ready()
    while True:
        message = await layer.receive(WORK_CHANNEL)
        await layer.send(message["listener"], {"type": "done", "id": message["id"]})


async def _work_streams(url: str, prefix: str) -> None:
    dispatch, layer = _dispatch(url, prefix), _layer(url, prefix)
    _ready()
    while True:
        deliveries = await dispatch.take("bench-worker", WORKER_SLOTS)
        if not deliveries:
            await dispatch.wait_for_work(1.0)
            continue
        for delivery in deliveries:
            message = delivery.message
            await layer.send(message["listener"], {"type": "done", "id": message["id"]})
        await dispatch.done(deliveries)


async def _work_saq(url: str, prefix: str) -> None:
    from saq import Worker

    async def add(ctx: Any, **message: Any) -> dict[str, Any]:
        return {"id": message["id"], "sum": message["arguments"]["a"] + 2}

    worker = Worker(_saq_queue(url, prefix), functions=[("add", add)], concurrency=WORKER_SLOTS)
    _ready()
    await worker.start()


WORKERS: dict[str, Callable[[str, str], Coroutine[Any, Any, None]]] = {
    "channels": _work_channels,
    "streams": _work_streams,
    "saq": _work_saq,
}


# --- the submitter -------------------------------------------------------------------------
class Submitter:
    """Sends one engine's hand-offs and waits for their results."""

    def __init__(self, engine: str, url: str, prefix: str) -> None:
        self.engine = engine
        logging.getLogger("saq").setLevel(logging.WARNING)  # a line per job at INFO
        self.layer = _layer(url, prefix)
        self.dispatch: Any = _dispatch(url, prefix) if engine == "streams" else None
        self.queue: Any = _saq_queue(url, prefix) if engine == "saq" else None

    async def round_trip(self, reply_to: str) -> None:
        """One hand-off, from submit to its result seen here."""
        message = _message(reply_to)
        if self.engine == "channels":
            await self.layer.send(WORK_CHANNEL, message)
        elif self.engine == "streams":
            from mcp_server.cluster.messages import OperationStart

            await self.dispatch.put(OperationStart.decode(message))
        else:
            # Not `apply`: it polls every poll_interval (0.5 s) even once the job is done.
            # `refresh` listens for the job's end on pub/sub; an end that comes between its
            # read and its subscribe is seen at the next read, 50 ms on.
            job = await self.queue.enqueue("add", **message)
            while not job.completed:
                with contextlib.suppress(TimeoutError):  # not ended within the 50 ms
                    await job.refresh(until_complete=0.05)
            return
        reply = await self.layer.receive(reply_to)
        assert reply["id"] == message["id"], reply

    async def close(self) -> None:
        """Let go of the connections."""
        if self.queue is not None:
            await self.queue.disconnect()
        if self.dispatch is not None:
            await self.dispatch.close()


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    submitter: Submitter, worker_pid: int, concurrency: int, warmup: float, window: float
) -> dict[str, float]:
    """Hand-offs/s, p50/p99 round trip (ms) and CPU per hand-off (ms) at `concurrency`."""
    sync_redis = redis.Redis.from_url(submitter.layer.hosts[0]["address"])
    reply_channels = [await submitter.layer.new_channel() for _ in range(concurrency)]
    samples: list[float] = []
    measuring = False
    stop_at = time.monotonic() + warmup + window

    async def client(reply_to: str) -> None:
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            await submitter.round_trip(reply_to)
            if measuring:
                samples.append(time.perf_counter() - began)

    clients = [asyncio.create_task(client(channel)) for channel in reply_channels]
    await asyncio.sleep(warmup)
    measuring = True
    cpu_before = _own_cpu() + process_cpu_seconds(worker_pid) + _redis_cpu(sync_redis)
    began = time.monotonic()
    await asyncio.gather(*clients)
    elapsed = time.monotonic() - began
    cpu = _own_cpu() + process_cpu_seconds(worker_pid) + _redis_cpu(sync_redis) - cpu_before
    sync_redis.close()
    count = len(samples)
    return {
        "rate": count / elapsed,
        "p50": percentile(samples, 0.5) * 1000,
        "p99": percentile(samples, 0.99) * 1000,
        "cpu": cpu / count * 1000 if count else float("nan"),
    }


async def _one_engine(
    engine: str, url: str, args: argparse.Namespace, logs: Path
) -> dict[int, dict[str, float]]:
    prefix = f"bench-engines-{secrets.token_hex(4)}"
    command = [sys.executable, __file__, "--worker", engine, "--redis-url", url, "--prefix", prefix]
    log_path = logs / f"{engine}-{prefix}.log"
    worker = ManagedProcess.start(engine, command, env=os.environ, log_path=log_path)
    submitter = Submitter(engine, url, prefix)
    try:
        await asyncio.to_thread(worker.wait_log_line, "ready")
        await asyncio.sleep(0.5)  # its first blocking read
        results = {}
        for concurrency in args.concurrency:
            results[concurrency] = await measure(
                submitter, worker.pid, concurrency, args.warmup, args.window
            )
        return results
    finally:
        await asyncio.to_thread(worker.stop, 10.0)
        await submitter.close()
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{prefix}*")) + list(client.scan_iter(f"saq:{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


async def run(args: argparse.Namespace) -> None:
    """Interleaved rounds over the engines; the medians, then a Markdown table."""
    readings: dict[tuple[str, int], list[dict[str, float]]] = {}
    logs = Path(tempfile.mkdtemp(prefix="mcp-bench-engines-"))
    for round_ in range(args.rounds):
        for engine in args.engines:
            measured = await _one_engine(engine, args.redis_url, args, logs)
            for concurrency, figures in measured.items():
                readings.setdefault((engine, concurrency), []).append(figures)
                print(f"round {round_ + 1} {engine} C={concurrency}: {figures}", flush=True)
    rows = []
    for (engine, concurrency), each in readings.items():
        figure = {key: median([row[key] for row in each]) for key in each[0]}
        rows.append([engine, str(concurrency), f"{figure['rate']:,.0f}", f"{figure['p50']:.2f}"])
        rows[-1] += [f"{figure['p99']:.2f}", f"{figure['cpu']:.3f}"]
    header = ["engine", "C", "hand-offs/s", "p50 ms", "p99 ms", "CPU ms per hand-off"]
    print("\n" + "\n".join(table(header, rows)))


def main() -> None:
    """Parse the options; run a worker (`--worker ENGINE`) or the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--engines", type=lambda v: v.split(","), default=list(ENGINES))
    parser.add_argument("--concurrency", type=lambda v: [int(c) for c in v.split(",")])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(WORKERS[args.worker](args.redis_url, args.prefix))
        return
    args.concurrency = args.concurrency or [1, 50]
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
