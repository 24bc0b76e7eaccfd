"""Where a progress message is on its way from a worker to a client, read from Redis MONITOR
(the channels-redis commands each message takes are described in docs/BENCHMARKS.md)."""

from __future__ import annotations

import codecs
import contextlib
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from bench.measure import percentile
from bench.report import PROGRESS, declare
from mcp_server.processes import ManagedProcess

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
