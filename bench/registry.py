"""Every scenario the load generator knows, by kind, and how to rebuild and run one."""

from __future__ import annotations

from typing import Any

from bench.history_profile import HistoryProfile
from bench.long_running import ImagesPing, ImagesProgress
from bench.queue_cancel import QueueCancelPing
from bench.scenarios import ConnectInitialize, IdleMemory, LoadTarget, Scenario, Throughput
from bench.storm import ConnectionStorm
from bench.unread_replies import UnreadReplies

SCENARIOS: dict[str, type[Scenario]] = {
    scenario.kind: scenario
    for scenario in (
        Throughput,
        ConnectInitialize,
        IdleMemory,
        ImagesProgress,
        ImagesPing,
        HistoryProfile,
        QueueCancelPing,
        UnreadReplies,
        ConnectionStorm,
    )
}


def scenario_from(kind: str, params: dict[str, Any]) -> Scenario:
    """Rebuild a scenario from its kind and parameters (in the load generator)."""
    try:
        cls = SCENARIOS[kind]
    except KeyError:
        raise ValueError(f"unknown scenario {kind!r}; known: {sorted(SCENARIOS)}") from None
    return cls(**params)


async def run_scenario(scenario: Scenario, target: LoadTarget) -> dict[str, float]:
    """Run one scenario and check that it reported every metric it declares."""
    metrics = await scenario.run(target)
    missing = {metric.key for metric in scenario.metrics()} - metrics.keys()
    if missing:
        raise RuntimeError(f"{scenario.label} did not report {sorted(missing)}")
    return metrics
