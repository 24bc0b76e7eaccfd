"""The load generator process: runs one scenario against one deployment and prints one JSON
line `{"metrics": {...}, "samples": {...}}`; exits non-zero on any failure."""

from __future__ import annotations

import argparse
import sys

import orjson
import uvloop

# The modules that define scenarios, imported for their registration in SCENARIOS.
from bench import cluster_load, http_load, long_running, storm  # noqa: F401
from bench.scenarios import SCENARIOS, LoadTarget
from mcp_server.processes import raise_nofile_limit


def main(argv: list[str] | None = None) -> int:
    """Run the scenario on uvloop and print its metrics and samples as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--params", default="{}", help="the scenario's parameters as JSON")
    parser.add_argument("--target", required=True, help="the LoadTarget as JSON")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    scenario = SCENARIOS[args.scenario](**orjson.loads(args.params))
    metrics, samples = uvloop.run(scenario.measure(LoadTarget(**orjson.loads(args.target))))
    # JSON has no NaN: orjson writes a metric that could not be measured as null.
    sys.stdout.write(orjson.dumps({"metrics": metrics, "samples": samples}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
