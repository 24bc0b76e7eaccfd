"""Runs a plan: for each repetition, each server in turn is started, measured and stopped."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.process import die_with_parent, free_port, logged_errors, pinned, running
from bench.results import RunResults, ServerInfo
from bench.scenarios import Scenario
from bench.targets import PYTHON, ROOT, Target


@dataclass(frozen=True)
class Pinning:
    """Which CPU the servers and the load generator run on (None: not pinned)."""

    server_cpu: int | None
    client_cpu: int | None


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the report."""
    print(message, file=sys.stderr, flush=True)


def run_loadgen(
    scenario: Scenario,
    url: str,
    server_pid: int,
    pinning: Pinning,
    peer_url: str | None = None,
) -> dict[str, float]:
    """Run one scenario in a fresh load generator process and return its metrics."""
    server_cpu = [] if pinning.server_cpu is None else ["--server-cpu", str(pinning.server_cpu)]
    peer = [] if peer_url is None else ["--peer-url", peer_url]
    command = [
        PYTHON,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--server-pid",
        str(server_pid),
        "--scenario",
        scenario.kind,
        "--params",
        orjson.dumps(scenario.params()).decode(),
        *server_cpu,
        *peer,
    ]
    payload = run_load_generator(
        command, cpu=pinning.client_cpu, timeout=scenario.timeout(), label=scenario.label
    )
    # JSON has no NaN: orjson writes a metric that could not be measured (NaN) as null.
    return {
        str(key): math.nan if value is None else float(value)
        for key, value in payload["metrics"].items()
    }


def run_load_generator(
    command: Sequence[str], *, cpu: int | None, timeout: float, label: str
) -> dict[str, Any]:
    """Run a load generator pinned to `cpu`; the JSON object of the last line it printed."""
    try:
        completed = subprocess.run(
            pinned(command, cpu),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=die_with_parent,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{label}: load generator timed out after {timeout:.0f} s") from exc
    if completed.returncode != 0:
        raise RuntimeError(
            f"{label}: load generator failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    payload: dict[str, Any] = orjson.loads(completed.stdout.strip().splitlines()[-1])
    return payload


def _summary(metrics: dict[str, float]) -> str:
    return ", ".join(f"{key.split('.')[-1]}={value:,.1f}" for key, value in metrics.items())


def measure_server(
    target: Target, plan: Sequence[Scenario], pinning: Pinning, logs: Path, repetition: int
) -> dict[str, float]:
    """Start one server, run every scenario against it, stop it; the metrics measured."""
    port = free_port()
    log_path = logs / f"{target.key}-{repetition}.log"
    measured: dict[str, float] = {}
    with running(
        target.key,
        target.command(port),
        env=target.env(),
        cwd=ROOT,
        log_path=log_path,
        cpu=pinning.server_cpu,
        health_url=target.health_url(port),
    ) as server:
        for scenario in (s for s in plan if s.applies_to(target.key) and target.measures(s.kind)):
            metrics = run_loadgen(
                scenario, target.ws_url(port), server.pid, pinning, target.peer_ws_url(port)
            )
            if not server.alive():
                raise RuntimeError(
                    f"{target.key} died during {scenario.label}:\n{server.log_tail()}"
                )
            log(f"    {scenario.label}: {_summary(metrics)}")
            measured.update(metrics)
    _warn_on_errors(target.key, log_path)
    return measured


def _warn_on_errors(name: str, log_path: Path) -> None:
    hits = logged_errors(log_path)
    if hits:
        log(f"  warning: {name} logged {len(hits)} error line(s), see {log_path}:")
        for line in hits[:5]:
            log(f"    {line}")


def run_plan(
    targets: Sequence[Target],
    plan: Sequence[Scenario],
    *,
    repeats: int,
    pinning: Pinning,
    workdir: Path,
) -> RunResults:
    """Prepare every target, then measure them in turn, `repeats` times over."""
    results = RunResults(
        servers=[ServerInfo(t.key, t.title, t.description) for t in targets],
        metrics=[metric for scenario in plan for metric in scenario.metrics()],
        repeats=repeats,
    )
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for target in targets:
        log(f"preparing {target.key}")
        target.prepare(workdir)
    for repetition in range(1, repeats + 1):
        for target in targets:
            log(f"[{repetition}/{repeats}] {target.key}")
            results.add(target.key, measure_server(target, plan, pinning, logs, repetition))
    return results
