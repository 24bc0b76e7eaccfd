"""How a benchmark script runs: options, CPU pinning, servers started and stopped around a load
generator process, and the temporary directory of a run."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from bench.report import ROOT, Metric, RunResults, ServerInfo
from bench.scenarios import LoadTarget, Scenario
from bench.servers import HOST, PYTHON, Target, start_process
from mcp_server.processes import ManagedProcess, die_with_parent, free_port, pinned


@dataclass(frozen=True)
class Pinning:
    """Which CPU the servers and the load generator run on (None: not pinned)."""

    server_cpu: int | None
    client_cpu: int | None


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the report."""
    print(message, file=sys.stderr, flush=True)


def pinning_from(args: argparse.Namespace) -> Pinning:
    """The CPUs to pin to, or none when asked or impossible (no taskset, one CPU)."""
    if args.no_pin or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        if not args.no_pin:
            log("warning: taskset or a second CPU is missing; running unpinned")
        return Pinning(None, None)
    return Pinning(args.server_cpu, args.client_cpu)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the `finally` blocks that stop the servers


@contextlib.contextmanager
def scratch_dir(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A fresh temporary directory for the block, removed after it unless `keep`; SIGTERM
    exits through the block so that the servers are stopped."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def running(
    target: Target, port: int, *, logs: Path, name: str, cpu: int | None
) -> Iterator[ManagedProcess]:
    """The target's server pinned to `cpu` for the block, ready (/healthz 200) when it starts."""
    server = start_process(name, target.command(port), target.env(), logs, cpu)
    try:
        server.wait_http_ok(f"http://{HOST}:{port}/healthz")
        yield server
    finally:
        server.stop(5.0)


def loadgen_command(scenario: Scenario, target: LoadTarget, cpu: int | None) -> list[str]:
    """The command line of a load generator (bench/loadgen.py) for `scenario`, pinned to `cpu`."""
    params, where = orjson.dumps(scenario.params()), orjson.dumps(dataclasses.asdict(target))
    command = [PYTHON, "-m", "bench.loadgen", "--scenario", scenario.kind]
    return pinned([*command, "--params", params.decode(), "--target", where.decode()], cpu)


def run_load(
    scenario: Scenario, target: LoadTarget, cpu: int | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run one scenario in a fresh load generator (bench/loadgen.py) pinned to `cpu`; the
    metrics it printed (null, for what it could not measure, as NaN) and its samples."""
    try:
        done = subprocess.run(
            loadgen_command(scenario, target, cpu),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=scenario.timeout(),
            check=False,
            preexec_fn=die_with_parent,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"{scenario.label}: load generator timed out after {exc.timeout:.0f} s"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(
            f"{scenario.label}: load generator failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    payload = orjson.loads(done.stdout.strip().splitlines()[-1])
    metrics = {str(k): math.nan if v is None else float(v) for k, v in payload["metrics"].items()}
    return metrics, dict(payload.get("samples") or {})


def summary(metrics: Mapping[str, float]) -> str:
    """Metrics on one line, for the progress log."""
    return ", ".join(f"{key}={value:,.1f}" for key, value in metrics.items())


def warn_on_errors(process: ManagedProcess) -> int:
    """Print a process's error lines (the first five); how many there were."""
    hits = process.error_lines()
    if hits:
        log(f"  warning: {process.name} logged {len(hits)} error line(s), see {process.log_path}:")
        for line in hits[:5]:
            log(f"    {line}")
    return len(hits)


def check_alive(processes: Sequence[ManagedProcess], during: str) -> None:
    """Fail, with the log tail, when one of the processes died."""
    for process in processes:
        if not process.alive():
            raise RuntimeError(f"{process.name} died during {during}:\n{process.log_tail()}")


def run_scenarios(
    plan: Sequence[Scenario],
    processes: Sequence[ManagedProcess],
    target: LoadTarget,
    pinning: Pinning,
) -> dict[str, float]:
    """Each scenario in a fresh load generator against running processes; what they measured."""
    measured: dict[str, float] = {}
    for scenario in plan:
        metrics, _ = run_load(scenario, target, pinning.client_cpu)
        check_alive(processes, scenario.label)
        log(f"    {scenario.label}: {summary(metrics)}")
        measured.update(metrics)
    return measured


def measure_server(
    target: Target, repetition: int, *, plan: Sequence[Scenario], pinning: Pinning, logs: Path
) -> dict[str, float]:
    """Start one server, run every scenario of the plan it takes, stop it; what was measured."""
    port = free_port()
    plan = [s for s in plan if s.applies_to(target.key) and s.kind in (target.kinds or [s.kind])]
    name, cpu = f"{target.key}-{repetition}", pinning.server_cpu
    with running(target, port, logs=logs, name=name, cpu=cpu) as server:
        load = target.load_target(port, server.pid, cpu)
        measured = run_scenarios(plan, [server], load, pinning)
    warn_on_errors(server)
    return measured


# How a run measures one server in one repetition.
Measure = Callable[[Any, int], dict[str, float]]


def run_plan(
    servers: Sequence[Target | ServerInfo],
    measure: Measure,
    repeats: int,
    logs: Path,
    metrics: list[Metric],
) -> RunResults:
    """Measure the servers in turn, `repeats` times over; every value must be of a declared
    metric (the scenarios' or the cluster benchmark's)."""
    results = RunResults(
        [ServerInfo(t.key, t.title, t.description) for t in servers], metrics, repeats
    )
    declared = {metric.key for metric in metrics}
    logs.mkdir(parents=True, exist_ok=True)
    for repetition in range(1, repeats + 1):
        for server in servers:
            log(f"[{repetition}/{repeats}] {server.key}")
            measured = measure(server, repetition)
            if undeclared := set(measured) - declared:
                raise RuntimeError(f"{server.key} reported undeclared metrics {sorted(undeclared)}")
            results.add(server.key, measured)
    return results
