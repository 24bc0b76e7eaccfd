"""Server (c): a raw `websockets` server answering MCP JSON-RPC by hand (initialize, ping,
`add`), no auth, no validation: the floor of the cost. GET /healthz answers 200."""

from __future__ import annotations

import argparse
import asyncio
import signal
from http import HTTPStatus
from typing import Any

import orjson
import uvloop
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.typing import Subprotocol

INITIALIZE_RESULT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {"listChanged": False}},
    "serverInfo": {"name": "bench-raw", "version": "1.0"},
}
MAX_MESSAGE_BYTES = 1024 * 1024


def error(request_id: Any, code: int, message: str) -> bytes:
    """A JSON-RPC error response."""
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    )


def result(request_id: Any, value: Any) -> bytes:
    """A JSON-RPC success response."""
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": value})


def call_tool(params: dict[str, Any]) -> dict[str, Any]:
    """The CallToolResult of `add`, or an isError result for bad arguments."""
    arguments = params.get("arguments") or {}
    a, b = arguments.get("a"), arguments.get("b")
    if params.get("name") != "add" or not (
        isinstance(a, int | float) and isinstance(b, int | float)
    ):
        return {"content": [{"type": "text", "text": "bad call"}], "isError": True}
    structured = {"result": a + b}
    return {
        "content": [{"type": "text", "text": orjson.dumps(structured).decode()}],
        "structuredContent": structured,
    }


def answer(message: Any) -> bytes | None:
    """The reply to one decoded message, or None for a notification."""
    if not isinstance(message, dict) or "method" not in message:
        return error(None, -32600, "Invalid Request")
    if "id" not in message:
        return None
    request_id, method = message["id"], message["method"]
    if method == "tools/call":
        return result(request_id, call_tool(message.get("params") or {}))
    if method == "initialize":
        return result(request_id, INITIALIZE_RESULT)
    if method == "ping":
        return result(request_id, {})
    return error(request_id, -32601, f"Method not found: {method}")


async def handler(websocket: ServerConnection) -> None:
    """Answer each text frame as it comes."""
    async for frame in websocket:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            await websocket.send(error(None, -32700, "Parse error").decode())
            continue
        reply = answer(message)
        if reply is not None:
            await websocket.send(reply.decode())


def healthz(connection: ServerConnection, request: Request) -> Response | None:
    """Answer the readiness probe over plain HTTP; let WebSocket handshakes through."""
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def serve_forever(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set_result, None)
    async with serve(
        handler,
        host,
        port,
        subprotocols=[Subprotocol("mcp")],
        compression=None,
        max_size=MAX_MESSAGE_BYTES,
        process_request=healthz,
    ):
        await stop


def main() -> None:
    """Parse --host/--port and serve on uvloop."""
    parser = argparse.ArgumentParser(description="raw websockets MCP server for the benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
