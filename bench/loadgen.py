"""The load generator process: runs one scenario against one server, prints JSON metrics.

Run by the harness pinned to its own CPU, e.g.
`python -m bench.loadgen --url ws://... --server-pid 123 --scenario throughput
--params '{"concurrency": 50}'`. Prints one line `{"metrics": {...}}`; exits non-zero on any
failure, including a reply with a wrong id or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from bench.process import raise_nofile_limit
from bench.registry import run_scenario, scenario_from
from bench.scenarios import LoadTarget


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The load generator's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="WebSocket URL of the MCP endpoint")
    parser.add_argument("--server-pid", type=int, required=True, help="for RSS readings")
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU the server is pinned to")
    parser.add_argument(
        "--peer-url", default=None, help="the endpoint as a caller of another tenant"
    )
    parser.add_argument("--scenario", required=True, help="a kind from bench.scenarios")
    parser.add_argument("--params", default="{}", help="the scenario's parameters as JSON")
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="client event loop"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print its metrics as one JSON line."""
    args = parse_args(argv)
    raise_nofile_limit()
    scenario = scenario_from(args.scenario, orjson.loads(args.params))
    target = LoadTarget(
        url=args.url,
        server_pid=args.server_pid,
        server_cpu=args.server_cpu,
        peer_url=args.peer_url,
    )
    coroutine = run_scenario(scenario, target)
    if args.loop == "uvloop":
        import uvloop

        metrics = uvloop.run(coroutine)
    else:
        metrics = asyncio.run(coroutine)
    sys.stdout.write(orjson.dumps({"metrics": metrics}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
