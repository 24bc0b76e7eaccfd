"""Profile one server under load with py-spy: where does its CPU time go?

`.venv/bin/python bench/hotspots.py --target service --concurrency 50 --seconds 10` starts the
server pinned like the benchmark, drives back-to-back `tools/call` from the load generator and
samples the server with `py-spy record` (install it with `.venv/bin/pip install py-spy`).
Writes the collapsed stacks to bench/results/profile-<target>.txt (speedscope and flamegraph.pl
read them) and prints the functions with the most samples, by own time and including callees.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: import `bench.*` from the repository root, not siblings from bench/.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import shutil
import subprocess
import tempfile
from collections import Counter

import orjson

from bench.harness import Pinning, log
from bench.process import free_port, pinned, raise_nofile_limit, running
from bench.pyspy import py_spy_path
from bench.scenarios import ConnectInitialize, Scenario, Throughput
from bench.storm import ConnectionStorm
from bench.targets import (
    PYTHON,
    ROOT,
    RedisServiceTarget,
    ServiceSetup,
    ServiceTarget,
    Target,
    raw_target,
    sdk_target,
)

RESULTS = ROOT / "bench" / "results"
# Frames worth a closer look: the project's own code and the frameworks it drives.
FOCUS = ("mcp_server/", "accounts/", "config/", "channels/", "asgiref/", "django/")
TARGETS = ("service", "service-daphne", "service-redis", "sdk", "raw")
REDIS_URL = "redis://127.0.0.1:6379/11"


def make_target(key: str) -> Target:
    """The target called `key`."""
    if key == "service":
        return ServiceTarget(ServiceSetup())
    if key == "service-daphne":
        return ServiceTarget(ServiceSetup(), "daphne")
    if key == "service-redis":
        return RedisServiceTarget(ServiceSetup(), REDIS_URL, (ConnectionStorm.kind,))
    return sdk_target() if key == "sdk" else raw_target()


def py_spy() -> str:
    """The py-spy executable (the venv's first)."""
    found = py_spy_path()
    if not found:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


Ranking = list[tuple[str, int]]


def top_functions(
    collapsed: Path, limit: int, thread: str | None = None
) -> tuple[Ranking, Ranking, Ranking, int]:
    """From py-spy's raw stacks: top frames by own samples, inclusive, and inclusive in FOCUS;
    with `thread`, only the stacks of threads whose name contains it (recorded with --threads)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    focus: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if thread is not None:
            if thread not in frames[0] or len(frames) < 2:
                continue
            frames = frames[1:]  # the "thread (TID): NAME" pseudo-frame
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
            if any(part in frame for part in FOCUS) and "management/" not in frame:
                focus[frame] += count
    return own.most_common(limit), inclusive.most_common(limit), focus.most_common(limit), total


def load_for(args: argparse.Namespace) -> Scenario:
    """The load to apply while sampling: back-to-back calls, connect+initialize in a loop, or
    a connection storm (sample it with --seconds shorter than the storm)."""
    if args.scenario == "connect":
        return ConnectInitialize(count=1_000_000)
    if args.scenario == "storm":
        return ConnectionStorm(connections=args.connections)
    return Throughput(args.concurrency, warmup_s=0.5, window_s=args.seconds + 600.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The profiler's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", choices=TARGETS, default="service")
    parser.add_argument(
        "--scenario", choices=("throughput", "connect", "storm"), default="throughput"
    )
    parser.add_argument("--concurrency", type=int, default=50, help="for throughput")
    parser.add_argument("--connections", type=int, default=10_000, help="for storm")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every thread, waiting ones included (default: only the GIL holder)",
    )
    parser.add_argument(
        "--thread",
        default=None,
        help="sample every running thread without pausing the server (C code without the GIL "
        "included) and rank only the "
        "threads whose name contains this, e.g. history-writer",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the server, load it, sample it, print the hot spots."""
    args = parse_args(argv)
    raise_nofile_limit()
    pinning = Pinning(None, None) if args.no_pin else Pinning(0, 1)
    target = make_target(args.target)
    RESULTS.mkdir(parents=True, exist_ok=True)
    collapsed = RESULTS / f"profile-{target.key}.txt"
    workdir = Path(tempfile.mkdtemp(prefix="mcp-bench-profile-"))
    try:
        target.prepare(workdir)
        port = free_port()
        with running(
            target.key,
            target.command(port),
            env=target.env(),
            cwd=ROOT,
            log_path=workdir / "server.log",
            cpu=pinning.server_cpu,
            health_url=target.health_url(port),
        ) as server:
            load = load_for(args)
            command = [
                PYTHON,
                "-m",
                "bench.loadgen",
                "--url",
                target.ws_url(port),
                "--server-pid",
                str(server.pid),
                "--scenario",
                load.kind,
                "--params",
                orjson.dumps(load.params()).decode(),
            ]
            with subprocess.Popen(
                pinned(command, pinning.client_cpu), cwd=ROOT, stdout=subprocess.DEVNULL
            ) as loadgen:
                try:
                    log(f"py-spy record of {target.key} for {args.seconds:.0f} s")
                    subprocess.run(
                        [
                            *(py_spy(), "record", "--pid", str(server.pid), "--format", "raw"),
                            *("--rate", str(args.rate), "--duration", str(round(args.seconds))),
                            *("--output", str(collapsed)),
                            *(() if args.all_threads or args.thread else ("--gil",)),
                            *(("--threads", "--nonblocking") if args.thread else ()),
                        ],
                        check=True,
                        capture_output=True,
                    )
                finally:
                    # The load outlasts the recording; stop it once py-spy is done.
                    loadgen.terminate()
                    loadgen.wait(timeout=30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    own, inclusive, focus, total = top_functions(collapsed, args.top, args.thread)
    under = {"connect": "connect+initialize", "storm": f"a storm of {args.connections:,}"}.get(
        args.scenario, f"C={args.concurrency}"
    )
    who = f" ({args.thread} threads)" if args.thread else ""
    print(f"{total} samples of {target.key}{who} under {under}; stacks in {collapsed}")
    print("\nmost own time:")
    for frame, count in own:
        print(f"  {count / total * 100:5.1f} %  {frame}")
    for title, ranking in (
        ("most time including callees", inclusive),
        ("project and framework frames, including callees", focus),
    ):
        print(f"\n{title}:")
        for frame, count in ranking:
            print(f"  {count / total * 100:5.1f} %  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
