"""Server (b): the official MCP Python SDK WebSocket transport with FastMCP and one `add`
tool, wired the way FastMCP wires its own transports; uvicorn, WARNING logs. GET /healthz: 200."""

from __future__ import annotations

import argparse
import warnings

import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.server.websocket import websocket_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

warnings.filterwarnings("ignore", category=DeprecationWarning)

# FastMCP's default log level is INFO through a rich handler: a formatted line per request.
# WARNING, like the service under test, so neither pays for logging.
server = FastMCP("bench-sdk", log_level="WARNING")


@server.tool()
async def add(a: float, b: float) -> float:
    """Add two numbers: a + b."""
    return a + b


async def mcp_endpoint(websocket: WebSocket) -> None:
    """One MCP session over one WebSocket."""
    lowlevel = server._mcp_server
    async with websocket_server(websocket.scope, websocket.receive, websocket.send) as streams:
        read_stream, write_stream = streams
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


async def healthz(request: Request) -> PlainTextResponse:
    """Readiness probe."""
    return PlainTextResponse("ok")


app = Starlette(
    routes=[Route("/healthz", healthz), WebSocketRoute("/mcp", mcp_endpoint)],
)


def main() -> None:
    """Serve on --host/--port until interrupted."""
    parser = argparse.ArgumentParser(description="MCP SDK WebSocket server for the benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
