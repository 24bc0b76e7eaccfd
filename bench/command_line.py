"""What the benchmark scripts (bench/run.py, bench/cluster.py) share around their measurements:
the options of a run, CPU pinning, SIGTERM, and the temporary directory."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from bench.harness import Pinning, log
from bench.process import pinning_available


def add_run_arguments(parser: argparse.ArgumentParser, *, keep_tmp_help: str) -> None:
    """Docs, repetitions, measuring window, pinning, temp dir: the options of every script."""
    parser.add_argument("--write-docs", action="store_true", help="update docs/BENCHMARKS.md")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--keep-tmp", action="store_true", help=keep_tmp_help)


def pinning_from(args: argparse.Namespace) -> Pinning:
    """The CPUs to pin to, or none when asked or impossible."""
    if args.no_pin or not pinning_available():
        if not args.no_pin:
            log("warning: taskset or a second CPU is missing; running unpinned")
        return Pinning(server_cpu=None, client_cpu=None)
    return Pinning(server_cpu=args.server_cpu, client_cpu=args.client_cpu)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Raising unwinds the `finally` blocks that stop the servers.
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM exit through the `finally` blocks, so that the servers are stopped."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


@contextlib.contextmanager
def scratch_dir(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A fresh temporary directory for the block; removed after it unless `keep`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
