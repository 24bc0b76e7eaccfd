"""Where a server's CPU time goes by kind of code: py-spy samples weighted by thread CPU time.

`py-spy record --threads --nonblocking` samples the server's running threads without pausing
it; /proc gives each thread's CPU time over the same span. A thread's CPU time is split
between kinds of code (e.g. "history writer") in proportion to its samples whose stack holds
one of the kind's frames; the shares of all threads add up to shares of the process's CPU.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench import cpu

THREAD_PREFIX = re.compile(r"^thread \((0x[0-9A-Fa-f]+|\d+)\)")
# Kinds of code: a name and the frames (substrings of py-spy's frame text) that mark it.
Kinds = Mapping[str, Sequence[str]]


def py_spy_path() -> str | None:
    """The py-spy executable next to this Python, else on PATH; None when not installed."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@dataclass
class ThreadSamples:
    """One thread's samples: in all, and per kind of code (the first kind that matches)."""

    total: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def classify(collapsed: Path, kinds: Kinds) -> dict[int, ThreadSamples]:
    """Read py-spy raw output recorded with --threads: each thread's samples by kind."""
    threads: dict[int, ThreadSamples] = {}
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        match = THREAD_PREFIX.match(stack)
        if not match or not count_text.isdigit():
            continue
        thread = threads.setdefault(int(match.group(1), 0), ThreadSamples())
        count = int(count_text)
        thread.total += count
        for kind, frames in kinds.items():
            if any(frame in stack for frame in frames):
                thread.kinds[kind] = thread.kinds.get(kind, 0) + count
                break
    return threads


def cpu_by_kind(
    threads: dict[int, ThreadSamples], before: dict[int, float], after: dict[int, float]
) -> dict[str, float]:
    """CPU seconds per kind: each thread's CPU time over the span, split by its samples."""
    seconds: dict[str, float] = {}
    for tid, thread in threads.items():
        if not thread.total or tid not in after:
            continue
        used = after[tid] - before.get(tid, 0.0)
        for kind, count in thread.kinds.items():
            seconds[kind] = seconds.get(kind, 0.0) + used * count / thread.total
    return seconds


@dataclass
class CpuProfile:
    """The outcome of a recording: process CPU seconds, CPU seconds per kind, samples."""

    process_s: float
    kinds_s: dict[str, float]
    samples: int

    def share(self, *kinds: str) -> float:
        """The share (0..1) of the process's CPU time spent in these kinds of code."""
        spent = sum(self.kinds_s.get(kind, 0.0) for kind in kinds)
        return spent / self.process_s if self.process_s > 0 else float("nan")


class Recording:
    """`async with Recording(pid, kinds, output) as r:` samples until the block ends."""

    def __init__(self, pid: int, kinds: Kinds, output: Path, rate: int = 100) -> None:
        self.pid = pid
        self.kinds = kinds
        self.output = output
        self.rate = rate
        self.profile: CpuProfile | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._before: tuple[float, dict[int, float]] = (0.0, {})

    async def __aenter__(self) -> Recording:
        executable = py_spy_path()
        if executable is None:
            raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
        command = [executable, "record", "--pid", str(self.pid), "--format", "raw"]
        command += ["--threads", "--nonblocking", "--rate", str(self.rate)]
        self._before = (cpu.process_cpu_seconds(self.pid), cpu.thread_cpu_seconds(self.pid))
        self._process = await asyncio.create_subprocess_exec(
            *command,
            "--output",
            str(self.output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        after = (cpu.process_cpu_seconds(self.pid), cpu.thread_cpu_seconds(self.pid))
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        _, stderr = await process.communicate()
        if exc_type is not None:
            return
        if process.returncode != 0 or not self.output.exists():
            raise RuntimeError(f"py-spy failed ({process.returncode}): {stderr.decode()[-2000:]}")
        threads = classify(self.output, self.kinds)
        self.profile = CpuProfile(
            process_s=after[0] - self._before[0],
            kinds_s=cpu_by_kind(threads, self._before[1], after[1]),
            samples=sum(thread.total for thread in threads.values()),
        )
