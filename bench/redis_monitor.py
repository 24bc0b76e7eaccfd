"""Where a progress message is on its way from a worker to a client, read from Redis MONITOR.

channels-redis sends a message to a process's channel as `ZREMRANGEBYSCORE key` (expiry),
`ZCOUNT key` (capacity), then `ZADD key <time.time() of the sender> <message>`; the receiving
process pops it with `BZPOPMIN` and at once copies it to `key$inflight` with another `ZADD`
(its backup until handled). `redis-cli monitor` prints every command with the wall-clock time
Redis executed it, so for each `operation.progress` message the monitor shows when the
worker began to send it, when it was in Redis, and when the web process took it. The client
on the same machine stamps its arrival with `time.time()` (the same clock).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from bench.process import die_with_parent

OPERATION_PROGRESS = "operation.progress"
# channels-redis puts 12 random bytes before each serialized message (random_prefix_length).
RANDOM_PREFIX_LENGTH = 12
INFLIGHT_SUFFIX = b"$inflight"
READY_TIMEOUT = 10.0
_LINE = re.compile(rb"^(\d+\.\d+) \[(\d+) ([^\]]+)\] (.*)$")
_ESCAPES = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("a"): b"\a",
    ord("b"): b"\b",
    ord('"'): b'"',
    ord("\\"): b"\\",
}


@dataclass(frozen=True)
class ProgressSend:
    """One `operation.progress` message through Redis, with the moments the monitor saw."""

    operation_id: str
    progress: float
    channel_key: bytes
    send_started: float  # ZREMRANGEBYSCORE of the same sender on the same key (Redis time)
    sender_time: float  # the ZADD's score: the sender's time.time() just before the ZADD
    stored: float  # the ZADD executed (Redis time)
    taken: float | None  # the receiver's ZADD to key$inflight after BZPOPMIN (Redis time)


def redis_cli_path() -> str | None:
    """`redis-cli`, if installed."""
    return shutil.which("redis-cli")


def split_arguments(text: bytes) -> list[bytes]:
    """The quoted arguments of a MONITOR line (`"ZADD" "key" ...`), unescaped."""
    arguments: list[bytes] = []
    index, size = 0, len(text)
    while index < size:
        if text[index] != ord('"'):
            index += 1
            continue
        index += 1
        current = bytearray()
        while index < size and text[index] != ord('"'):
            char = text[index]
            if char == ord("\\") and index + 1 < size:
                following = text[index + 1]
                if following == ord("x") and index + 3 < size:
                    current += bytes([int(text[index + 2 : index + 4], 16)])
                    index += 4
                    continue
                current += _ESCAPES.get(following, bytes([following]))
                index += 2
                continue
            current.append(char)
            index += 1
        arguments.append(bytes(current))
        index += 1
    return arguments


def decode_message(member: bytes) -> dict[str, Any] | None:
    """A channels-redis message (random prefix, then msgpack), or None if it is not one."""
    try:
        message = msgpack.unpackb(member[RANDOM_PREFIX_LENGTH:], raw=False)
    except Exception:
        return None
    return message if isinstance(message, dict) else None


def parse_progress_sends(path: Path, prefix: str, db: int) -> list[ProgressSend]:
    """Every `operation.progress` message sent under `prefix` in database `db`, in order."""
    started: dict[tuple[bytes, bytes], float] = {}
    taken: dict[bytes, float] = {}
    # key, send started, sender's time, stored, message, member
    pending: list[tuple[bytes, float, float, float, dict[str, Any], bytes]] = []
    key_prefix = prefix.encode()
    with path.open("rb") as lines:
        for raw in lines:
            match = _LINE.match(raw.rstrip(b"\r\n"))
            if match is None or int(match.group(2)) != db:
                continue
            at, client = float(match.group(1)), match.group(3)
            arguments = split_arguments(match.group(4))
            if len(arguments) < 2 or not arguments[1].startswith(key_prefix):
                continue
            command, key = arguments[0].upper(), arguments[1]
            if command == b"ZREMRANGEBYSCORE":
                started[(client, key)] = at
            elif command == b"ZADD" and len(arguments) >= 4:
                member = arguments[3]
                if key.endswith(INFLIGHT_SUFFIX):
                    taken.setdefault(member, at)
                    continue
                message = decode_message(member)
                if message is None or message.get("type") != OPERATION_PROGRESS:
                    continue
                began = started.get((client, key), at)
                pending.append((key, began, float(arguments[2]), at, message, member))
    return [
        ProgressSend(
            operation_id=str(message.get("id")),
            progress=float(message.get("progress") or 0.0),
            channel_key=key,
            send_started=began,
            sender_time=score,
            stored=at,
            taken=taken.get(member),
        )
        for key, began, score, at, message, member in pending
    ]


@contextlib.contextmanager
def monitoring(redis_url: str, output: Path) -> Iterator[Path]:
    """Run `redis-cli monitor` into `output` for the duration of the block."""
    cli = redis_cli_path()
    if cli is None:
        raise RuntimeError("redis-cli is not installed")
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [cli, "-u", redis_url, "monitor"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while output.stat().st_size == 0:  # redis-cli prints OK once monitoring
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-cli monitor did not start: {output.read_text()}")
                time.sleep(0.02)
            yield output
            time.sleep(0.3)  # the last lines
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
