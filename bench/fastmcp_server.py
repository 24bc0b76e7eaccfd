"""Server (c): FastMCP 4.1.6 on the official SDK 2.3 over Streamable HTTP at /mcp, its default
deployment (`http_app()`: stateful sessions, SSE responses) under uvicorn, WARNING logs; the
same `add` tool and a `process_batch` that reports progress like the service's. No auth.
GET /healthz: 200. Runs in the `fastmcp` environment (clients/envs.py), not the project's."""

from __future__ import annotations

import argparse
import asyncio
import os

# FastMCP logs every request at INFO through a rich handler: WARNING, as the service runs.
os.environ.setdefault("FASTMCP_LOG_LEVEL", "WARNING")

import uvicorn  # after the log level: FastMCP reads it on import
from fastmcp import Context, FastMCP
from starlette.requests import Request
from starlette.responses import PlainTextResponse

server = FastMCP("bench-fastmcp")


@server.tool()
async def add(a: float, b: float) -> float:
    """Add two numbers: a + b."""
    return a + b


@server.tool()
async def process_batch(count: int, ctx: Context, item_ms: float = 5) -> dict[str, int]:
    """Process `count` synthetic items, reporting progress on every item."""
    for done in range(1, count + 1):
        await asyncio.sleep(item_ms / 1000)
        await ctx.report_progress(done, count)
    return {"processed": count}


@server.custom_route("/healthz", methods=["GET"])
async def healthz(request: Request) -> PlainTextResponse:
    """Readiness probe."""
    return PlainTextResponse("ok")


def main() -> None:
    """Serve on --host/--port until interrupted."""
    parser = argparse.ArgumentParser(description="FastMCP Streamable HTTP server for the benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        server.http_app(path="/mcp"),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
