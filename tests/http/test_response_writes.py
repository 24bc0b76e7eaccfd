"""HeadWithBody: a response's head goes out with its first body chunk, or alone once the turn
of the event loop that wrote it ends; nothing is reordered or lost at close."""

import asyncio
import socket
from typing import Any

import httpx
import pytest
import uvicorn

from mcp_server.response_writes import HeadWithBody
from mcp_server.uvicorn_websocket import McpHttpToolsProtocol
from tests.support import wait_until, yield_to_other_tasks


class RecordingTransport:
    """The writes a transport was given, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.written = asyncio.get_running_loop().create_future()

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        if not self.written.done():
            self.written.set_result(None)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _writes() -> tuple[HeadWithBody, RecordingTransport]:
    transport = RecordingTransport()
    return HeadWithBody(transport, asyncio.get_running_loop()), transport  # type: ignore[arg-type]


async def test_a_head_and_body_of_one_turn_are_one_write() -> None:
    writes, transport = _writes()
    writes.hold_next()
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    writes.write(b"{}")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    writes.write(b"more")  # after the head, straight through
    assert transport.writes[-1] == b"more"


async def test_a_head_alone_goes_out_when_its_turn_ends() -> None:
    """A stream's headers, whose first event comes later, are not held back."""
    writes, transport = _writes()
    writes.hold_next()
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    await asyncio.wait_for(transport.written, 1.0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    writes.write(b"data: 1\n\n")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n", b"data: 1\n\n"]


async def test_only_the_first_write_of_each_cycle_is_held() -> None:
    writes, transport = _writes()
    writes.write(b"unheld")
    assert transport.writes == [b"unheld"]
    writes.hold_next()
    writes.write(b"head")
    writes.write(b"body")
    writes.hold_next()
    writes.write(b"head2")
    writes.write(b"body2")
    assert transport.writes == [b"unheld", b"headbody", b"head2body2"]


async def test_close_writes_what_is_held_first() -> None:
    writes, transport = _writes()
    writes.hold_next()
    writes.write(b"head")
    writes.close()
    assert transport.writes == [b"head"] and transport.closed and writes.is_closing()


@pytest.fixture
async def plain_server() -> Any:
    """uvicorn with this project's HTTP protocol around a tiny ASGI app on a free port."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await yield_to_other_tasks()  # the chunks in a later turn, as a stream's are
            for chunk in (b"a", b"b"):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b'{"ok": true}'
        headers = [(b"content-type", b"application/json"), (b"content-length", b"12")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, http=McpHttpToolsProtocol, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        await wait_until(lambda: server.started, what="uvicorn to start")
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10.0)
        listening.close()


async def test_responses_over_a_kept_alive_connection(plain_server: str) -> None:
    """Whole responses and a chunked stream, one after the other on one connection."""
    async with httpx.AsyncClient(base_url=plain_server) as client:
        for _ in range(3):
            response = await client.get("/json")
            assert response.status_code == 200 and response.json() == {"ok": True}
            streamed = await client.get("/stream")
            assert streamed.status_code == 200 and streamed.content == b"ab"
