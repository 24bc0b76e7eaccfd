"""What metrics cost one trivial tools/call: its three recording calls and its share of a flush.

    .venv/bin/python bench/metrics_recording.py [--baseline OTHER_VERSION_OF_metrics.py]

In multiprocess mode (files in a temp dir), a flush every `--batch` calls as a heartbeat round
would; nanoseconds per call, the baseline's in interleaved rounds (docs/BENCHMARKS.md)."""

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass(slots=True)
class _Call:
    """The attributes of a RunningOperation that metrics read."""

    queued_at: datetime
    started_at: datetime
    finished_at: datetime
    tool_name: str
    status: Any
    principal: Any


def _calls(count: int) -> list[_Call]:
    from django.utils import timezone

    from accounts.principal import Principal
    from mcp_server.operations.lifecycle import OperationStatus

    principal = Principal(
        user_id=1,
        username="bench",
        tenant_id=1,
        tenant_slug="bench",
        is_tenant_admin=False,
        enabled_tools=None,
    )
    now = timezone.now()
    calls = []
    for index in range(count):
        started = now + timedelta(microseconds=50 + (index % 3) * 1000)
        finished = started + timedelta(microseconds=30 * index)
        calls.append(_Call(now, started, finished, "add", OperationStatus.SUCCEEDED, principal))
    return calls


def _per_call(module: ModuleType, calls: list[_Call], rounds: int) -> float:
    """Nanoseconds per call of recording and flushing `calls`, `rounds` times over."""
    started = time.perf_counter_ns()
    for _ in range(rounds):
        for call in calls:
            module.request_answered("tools/call", "ok", call.principal)
            module.operation_started(call)
            module.operation_finished(call)
        module.flush()
    return (time.perf_counter_ns() - started) / (rounds * len(calls))


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("metrics_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"not a Python module: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="another version of mcp_server/metrics.py")
    parser.add_argument("--batch", type=int, default=1000, help="calls between flushes")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mcp-metrics-bench-")
    os.environ["MCP_METRICS"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from mcp_server import metrics

    modules = {"this": metrics}
    if args.baseline is not None:
        modules["baseline"] = _load(args.baseline)
    calls = _calls(args.batch)
    for index in range(1, args.rounds + 1):
        figures = {name: _per_call(module, calls, 100) for name, module in modules.items()}
        text = ", ".join(f"{name} {value:,.0f} ns" for name, value in figures.items())
        print(f"round {index}: per call {text}")


if __name__ == "__main__":
    main()
