"""The benchmarks' metrics: each declared once, the same keys per scenario as recorded in
metric_keys.json (what `make bench` and bench/cluster.py reported before bench/ was cut), and
nothing reported that is not declared."""

import json
from pathlib import Path
from typing import ClassVar

import pytest

from bench import cluster
from bench.harness import run_plan
from bench.report import Metric, ServerInfo, declare
from bench.run import build_plan, parse_args
from bench.scenarios import LoadTarget, Scenario
from bench.servers import ServiceSetup

RECORDED = json.loads((Path(__file__).parent / "metric_keys.json").read_text())
FANOUT = ["--fanout-images", "100", "--scale-workers", "2"]
FAILOVER = ["--failover-images", "100"]


def declared_by_scenario() -> dict[str, list[str]]:
    """Each scenario of `make bench`'s default plan, and the cluster benchmark, with its keys."""
    setup = ServiceSetup(images=10_000, var_dir=Path("/nonexistent"))
    plan = build_plan(parse_args([]), setup)
    keys = {scenario.label: [m.key for m in scenario.metrics()] for scenario in plan}
    keys["cluster"] = [m.key for m in cluster.metrics(parse_args([]))]
    for options in (FANOUT, FAILOVER):
        keys[f"cluster {' '.join(options)}"] = [m.key for m in cluster.metrics(parse_args(options))]
    return keys


def test_every_scenario_reports_the_recorded_keys() -> None:
    assert declared_by_scenario() == RECORDED


def test_each_metric_is_declared_once_in_a_run() -> None:
    keys = declared_by_scenario()
    single = [k for label, each in keys.items() if not label.startswith("cluster") for k in each]
    assert len(single) == len(set(single))
    for label in ("cluster", *(f"cluster {' '.join(o)}" for o in (FANOUT, FAILOVER))):
        assert len(keys[label]) == len(set(keys[label]))


class _Reports(Scenario):
    kind: ClassVar[str] = "test-reports"
    title: ClassVar[str] = "reports"

    def metrics(self) -> list[Metric]:
        return declare("t", [("a", "a", "s"), ("b", "b", "s")])

    async def run(self, target: LoadTarget) -> dict[str, float]:
        return {"t.a": 1.0}


async def test_a_scenario_that_leaves_a_declared_metric_out_fails() -> None:
    with pytest.raises(RuntimeError, match=r"did not report \['t.b'\]"):
        await _Reports().measure(LoadTarget([], {}))


def test_a_run_refuses_a_metric_nobody_declared(tmp_path: Path) -> None:
    server = ServerInfo("s", "a server", "one")
    metrics = _Reports().metrics()
    results = run_plan([server], lambda _, __: {"t.a": 1.0}, 1, tmp_path, metrics)
    assert results.samples("s", "t.a") == [1.0]
    with pytest.raises(RuntimeError, match=r"undeclared metrics \['t.c'\]"):
        run_plan([server], lambda _, __: {"t.c": 1.0}, 1, tmp_path, metrics)
