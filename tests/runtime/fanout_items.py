"""Item functions for the fan-out tests, importable by name in the pool's processes."""

import os
import socket
import time
from pathlib import Path

from mcp_server.runtime.fanout import ItemFailed, chunk_function


@chunk_function
def square(item: int, *, fail_every: int = 0) -> int:
    """The item squared; every `fail_every`-th item (by value) fails."""
    if fail_every and item % fail_every == 0:
        raise ItemFailed(f"{item} is a multiple of {fail_every}")
    return item * item


@chunk_function
def slow_mark(item: int, *, marks: str, item_ms: int) -> int:
    """Sleep `item_ms`, then leave a file named after the item in `marks` (what ran)."""
    time.sleep(item_ms / 1000)
    Path(marks, str(item)).touch()
    return os.getpid()


@chunk_function
def broken(item: int) -> int:
    """An item function with a bug: not an item failure, the call's."""
    raise RuntimeError(f"bug at {item}")


def undeclared(item: int) -> int:
    """Not a chunk function: fan_out refuses it."""
    return item


@chunk_function
def undecodable(item: int) -> str:
    """A value no channel layer can carry: a lone surrogate (what a non-UTF-8 name decodes to)."""
    return f"caf\udce9-{item}"


@chunk_function
def dies_once(item: int, *, marks: str) -> int:
    """Kill the pool process the first time (a crash in a decoder), then do the item."""
    first = Path(marks, "died")
    if not first.exists():
        first.touch()
        os._exit(1)
    return item


@chunk_function
def gated(item: int, *, marks: str) -> int:
    """Leave `started-<item>`, then wait (at most a minute) for the test to send a byte on the
    Unix socket `release` in `marks`, then leave `finished-<item>`: an item that ends only
    when the test says so."""
    Path(marks, f"started-{item}").touch()
    with socket.socket(socket.AF_UNIX) as gate:
        gate.settimeout(60)
        gate.connect(str(Path(marks, "release")))
        gate.recv(1)
    Path(marks, f"finished-{item}").touch()
    return item
