"""Profile one server under load with py-spy: where does its CPU time go?

`.venv/bin/python bench/hotspots.py --target service --concurrency 50 --seconds 10` writes the
collapsed stacks to bench/results/profile-<target>.txt and prints the top functions
(`--scenario http`: the same calls over Streamable HTTP, bench/http_load.py; `--share
mcp_server/metrics.py,prometheus_client`: also the share of samples under those frames)."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: import `bench.*` from the repository root, not siblings from bench/.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import subprocess
from collections import Counter

from bench.harness import loadgen_command, log, running, scratch_dir
from bench.http_load import HttpModernThroughput, HttpThroughput
from bench.pyspy import collapsed_stacks, py_spy_path, record_command
from bench.report import ROOT
from bench.scenarios import ConnectInitialize, ModernThroughput, Scenario, Throughput
from bench.servers import DEFAULT_REDIS_URL, RAW, SDK, ServiceSetup, ServiceTarget, Target
from bench.storm import ConnectionStorm
from mcp_server.processes import free_port, raise_nofile_limit

RESULTS = ROOT / "bench" / "results"
# Frames worth a closer look: the project's own code and the frameworks it drives.
FOCUS = ("mcp_server/", "accounts/", "config/", "channels/", "asgiref/", "django/")
TARGETS = ("service", "service-daphne", "service-redis", "sdk", "raw")
Ranking = list[tuple[str, int]]


def make_target(
    key: str, *, history: bool = True, writer: str = "thread", cpus: str = ""
) -> Target:
    """The target called `key` (the service's with history on or off, written by a thread or
    by a process on `cpus`)."""
    if key in (SDK.key, RAW.key):
        return SDK if key == SDK.key else RAW
    return ServiceTarget(
        ServiceSetup(),
        "daphne" if key == "service-daphne" else "uvicorn",
        redis_url=DEFAULT_REDIS_URL if key == "service-redis" else None,
        history=history,
        writer=writer,
        writer_cpus=cpus,
    )


def top_functions(
    collapsed: Path, limit: int, thread: str | None
) -> tuple[Ranking, Ranking, Ranking, int]:
    """From py-spy's raw stacks: top frames by own samples, inclusive, and inclusive in FOCUS;
    with `thread`, only the stacks of threads whose name contains it (recorded with --threads)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    focus: Counter[str] = Counter()
    total = 0
    for stack, count in collapsed_stacks(collapsed):
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


def share_under(collapsed: Path, parts: tuple[str, ...]) -> int:
    """Samples with a frame whose text contains one of `parts` (e.g. a module's path)."""
    return sum(
        count
        for stack, count in collapsed_stacks(collapsed)
        if any(part in frame for frame in stack.split(";") for part in parts)
    )


SCENARIOS = {
    "throughput": Throughput,
    "http": HttpThroughput,
    "modern": ModernThroughput,
    "http-modern": HttpModernThroughput,
    "connect": ConnectInitialize,
    "storm": ConnectionStorm,
}


def load_for(args: argparse.Namespace) -> Scenario:
    """Back-to-back calls (over WebSocket or Streamable HTTP, either revision), connect+initialize
    in a loop, or a connection storm (sample it with --seconds shorter than the storm)."""
    if args.scenario == "connect":
        return ConnectInitialize(count=1_000_000)
    if args.scenario == "storm":
        return ConnectionStorm(connections=args.connections)
    return SCENARIOS[args.scenario](args.concurrency, warmup_s=0.5, window_s=args.seconds + 600.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The profiler's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    option = parser.add_argument
    option("--target", choices=TARGETS, default="service")
    option("--scenario", choices=tuple(SCENARIOS), default="throughput")
    option("--concurrency", type=int, default=50, help="for throughput and http")
    option("--connections", type=int, default=10_000, help="for storm")
    option("--seconds", type=float, default=10.0)
    option("--rate", type=int, default=200, help="py-spy samples per second")
    option("--top", type=int, default=30)
    option("--no-pin", action="store_true")
    option("--history", choices=("on", "off"), default="on", help="the service's history")
    option("--history-writer", choices=("thread", "process"), default="thread")
    option("--history-writer-cpus", default="", help="CPUs of the writer process")
    option(
        "--share",
        default="",
        help="also print the share of samples under frames from these comma-separated paths, "
        "e.g. mcp_server/metrics.py,prometheus_client",
    )
    option(
        "--native",
        action="store_true",
        help="C frames too (e.g. the garbage collector's); pauses the server to sample, which "
        "over-counts system calls on a VM",
    )
    option(
        "--all-threads",
        action="store_true",
        help="every thread, waiting ones too (default: GIL holder)",
    )
    option(
        "--thread",
        default=None,
        help="sample every running thread without pausing the server (C code without the GIL "
        "included) and rank only the threads whose name contains this, e.g. history-writer",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the server, load it, sample it, print the hot spots."""
    args = parse_args(argv)
    raise_nofile_limit()
    if py_spy_path() is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    server_cpu, client_cpu = (None, None) if args.no_pin else (0, 1)
    target = make_target(
        args.target,
        history=args.history == "on",
        writer=args.history_writer,
        cpus=args.history_writer_cpus,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    collapsed = RESULTS / f"profile-{target.key}.txt"
    load = load_for(args)
    # --thread: every running thread, unpaused; --all-threads: waiting ones too; else the GIL's.
    sampling = (
        ["--threads", "--nonblocking"] if args.thread else [] if args.all_threads else ["--gil"]
    )
    if not args.native:
        # Pausing the server to sample it lands most samples on system calls on a VM
        # (docs/BENCHMARKS.md, issue 16): read it running instead. C frames need the pause.
        sampling = [*dict.fromkeys([*sampling, "--nonblocking"])]
    with scratch_dir("mcp-bench-profile-", keep=False) as workdir:
        target.prepare(workdir)
        port = free_port()
        with running(target, port, logs=workdir, name="server", cpu=server_cpu) as server:
            load_target = target.load_target(port, server.pid, server_cpu)
            command = loadgen_command(load, load_target, client_cpu)
            with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL) as loadgen:
                try:
                    log(f"py-spy record of {target.key} for {args.seconds:.0f} s")
                    sampling += ["--duration", str(round(args.seconds))]
                    sampling += ["--native"] if args.native else []
                    record = record_command(server.pid, args.rate, collapsed, *sampling)
                    subprocess.run(record, check=True, capture_output=True)
                finally:
                    loadgen.terminate()  # the load outlasts the recording
                    loadgen.wait(timeout=30)
    own, inclusive, focus, total = top_functions(collapsed, args.top, args.thread)
    who = f" ({args.thread} threads)" if args.thread else ""
    load_text = "connect+initialize" if args.scenario == "connect" else load.label
    print(f"{total} samples of {target.key}{who} under {load_text}; stacks in {collapsed}")
    parts = tuple(part for part in args.share.split(",") if part)
    if parts:
        under_parts = share_under(collapsed, parts)
        print(f"{under_parts / total * 100:.2f} % of the samples under {', '.join(parts)}")
    for title, ranking in (
        ("most own time", own),
        ("most time including callees", inclusive),
        ("project and framework frames, including callees", focus),
    ):
        print(f"\n{title}:")
        for frame, count in ranking:
            print(f"  {count / total * 100:5.1f} %  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
