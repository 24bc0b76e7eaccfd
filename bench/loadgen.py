"""The load generator process: runs one scenario against one deployment and prints one JSON
line `{"metrics": {...}, "samples": {...}}`; exits non-zero on any failure."""

from __future__ import annotations

import argparse
import sys

import orjson
import uvloop

from bench.cluster_load import (
    ClusterThroughput,
    FanOutImages,
    FirstProgress,
    ProgressStream,
    Scale,
)
from bench.http_load import HttpFirstProgress, HttpThroughput
from bench.long_running import HistoryProfile, ImagesPing, ImagesProgress
from bench.modern_load import HttpModernThroughput, ModernThroughput
from bench.scenarios import (
    ConnectInitialize,
    IdleMemory,
    LoadTarget,
    QueueCancelPing,
    Scenario,
    Throughput,
    UnreadReplies,
)
from bench.storm import ConnectionStorm
from mcp_server.processes import raise_nofile_limit

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
        ClusterThroughput,
        FanOutImages,
        FirstProgress,
        ProgressStream,
        Scale,
        HttpThroughput,
        HttpFirstProgress,
        ModernThroughput,
        HttpModernThroughput,
    )
}


def main(argv: list[str] | None = None) -> int:
    """Run the scenario on uvloop and print its metrics and samples as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--params", default="{}", help="the scenario's parameters as JSON")
    parser.add_argument("--urls", default="", help="comma-separated MCP WebSocket URLs")
    parser.add_argument("--http-url", default=None, help="the Streamable HTTP endpoint")
    parser.add_argument("--bearer", default=None, help="its bearer token (none: no auth)")
    parser.add_argument("--pids", default="", help="name=pid,... (`server` for one process)")
    parser.add_argument("--server-cpu", type=int, default=None, help="the server's CPU")
    parser.add_argument("--peer-url", default=None, help="the endpoint as another tenant")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    scenario = SCENARIOS[args.scenario](**orjson.loads(args.params))
    pairs = (item.split("=", 1) for item in args.pids.split(",") if item)
    target = LoadTarget(
        urls=[url for url in args.urls.split(",") if url],
        pids={name: int(pid) for name, pid in pairs},
        server_cpu=args.server_cpu,
        peer_url=args.peer_url,
        http_url=args.http_url,
        bearer=args.bearer,
    )
    metrics, samples = uvloop.run(scenario.measure(target))
    # JSON has no NaN: orjson writes a metric that could not be measured as null.
    sys.stdout.write(orjson.dumps({"metrics": metrics, "samples": samples}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
