"""Where a server's CPU time goes by kind of code: py-spy samples weighted by each thread's
CPU time from /proc over the same span."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.measure import process_cpu_seconds, thread_cpu_seconds

THREAD_PREFIX = re.compile(r"^thread \((0x[0-9A-Fa-f]+|\d+)\)")
# Kinds of code: a name and the frames (substrings of py-spy's frame text) that mark it.
Kinds = Mapping[str, Sequence[str]]


def py_spy_path() -> str | None:
    """The py-spy executable next to this Python, else on PATH; None when not installed."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record_command(pid: int, rate: int, output: Path, *flags: str) -> list[str]:
    """`py-spy record` of process `pid` into raw (collapsed) stacks at `output`, with `flags`."""
    executable = py_spy_path()
    if executable is None:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    command = [executable, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate)]
    return [*command, "--output", str(output), *flags]


def collapsed_stacks(path: Path) -> Iterator[tuple[str, int]]:
    """(stack, samples) of each line of py-spy's raw (collapsed) output."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack, int(count)


@dataclass
class CpuProfile:
    """The outcome of a recording: process CPU seconds, CPU seconds per kind, samples."""

    process_s: float
    kinds_s: dict[str, float]
    samples: int

    def share(self, *kinds: str) -> float:
        """The share (0..1) of the process's CPU time spent in these kinds of code."""
        spent = sum(self.kinds_s.get(kind, 0.0) for kind in kinds)
        return spent / self.process_s if self.process_s > 0 else math.nan


def profile_of(
    collapsed: Path,
    kinds: Kinds,
    before: dict[int, float],
    after: dict[int, float],
    process_s: float,
) -> CpuProfile:
    """Split each thread's CPU time over the span by kind, in proportion to its samples."""
    totals: dict[int, int] = {}
    by_kind: dict[int, dict[str, int]] = {}
    for stack, count in collapsed_stacks(collapsed):
        match = THREAD_PREFIX.match(stack)
        if not match:
            continue
        tid = int(match.group(1), 0)
        totals[tid] = totals.get(tid, 0) + count
        kind = next((k for k, frames in kinds.items() if any(f in stack for f in frames)), None)
        if kind is not None:
            by_kind.setdefault(tid, {})[kind] = by_kind.get(tid, {}).get(kind, 0) + count
    seconds: dict[str, float] = {}
    for tid, counts in by_kind.items():
        if tid in after:
            used = after[tid] - before.get(tid, 0.0)
            for kind, count in counts.items():
                seconds[kind] = seconds.get(kind, 0.0) + used * count / totals[tid]
    return CpuProfile(process_s, seconds, sum(totals.values()))


class Recording:
    """`async with Recording(pid, kinds) as r:` samples (into a temporary file) until the block
    ends, then `r.profile` holds the split."""

    def __init__(self, pid: int, kinds: Kinds, rate: int = 100) -> None:
        self.pid, self.kinds, self.rate = pid, kinds, rate
        self.output = Path(tempfile.mkdtemp(prefix="bench-pyspy-")) / "stacks.txt"
        self.profile: CpuProfile | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._before: tuple[float, dict[int, float]] = (0.0, {})

    async def __aenter__(self) -> Recording:
        command = record_command(self.pid, self.rate, self.output, "--threads", "--nonblocking")
        self._before = (process_cpu_seconds(self.pid), thread_cpu_seconds(self.pid))
        self._process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._process is None:
            return
        after = (process_cpu_seconds(self.pid), thread_cpu_seconds(self.pid))
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        _, stderr = await self._process.communicate()
        try:
            if exc_type is not None:
                return
            if self._process.returncode != 0 or not self.output.exists():
                code, text = self._process.returncode, stderr.decode()[-2000:]
                raise RuntimeError(f"py-spy failed ({code}): {text}")
            process_s = after[0] - self._before[0]
            self.profile = profile_of(self.output, self.kinds, self._before[1], after[1], process_s)
        finally:
            shutil.rmtree(self.output.parent, ignore_errors=True)
