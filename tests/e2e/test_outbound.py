"""A client that does not read its replies cannot grow the server (issue 10, §4)."""

import asyncio
import contextlib
import re
import secrets

from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import (
    Deployment,
    RawClient,
    raw_client,
    raw_connection,
    result_of,
    wait_until_async,
)
from tests.e2e.test_operations import CALL_TIMEOUT, send_call, wait_for_status

OUTBOUND_LIMIT = 16 * 1024 * 1024
REPLY_TEXT = "x" * (800 * 1024)
# 78 MiB of replies: far past the bound plus what the kernel's socket buffers take.
UNREAD_CALLS = 100
# Where the server's memory must settle after the close (the code before kept 200+ MiB more).
RSS_MARGIN = 48 * 1024 * 1024
CLOSE_TIMEOUT = 60.0
# Far more pongs (131 bytes each) than the kernel's socket buffers and the bound hold.
MAX_PINGS = 400_000
SETTLE_TIMEOUT = 60.0
CLOSED_LINE = re.compile(
    r'"WebSocket /mcp" closed with 1008: (\d+) bytes of replies unread, '
    rf"over the limit of {OUTBOUND_LIMIT}"
)


async def test_a_client_that_does_not_read_is_closed_and_its_memory_given_back(
    server_factory: ServerFactory, accounts: Accounts, deployment: Deployment
) -> None:
    server = server_factory(MCP_MAX_OUTBOUND_BYTES_PER_CONNECTION=str(OUTBOUND_LIMIT))
    async with raw_client(server, accounts.bob) as reader:
        # A client that reads gets many big replies at once, well within its bound.
        for n in range(10):
            await send_call(reader, f"big-{n}", "echo", {"text": REPLY_TEXT})
        replies = [await reader.recv(CALL_TIMEOUT) for _ in range(10)]  # in any order
        assert sorted(reply["id"] for reply in replies) == sorted(f"big-{n}" for n in range(10))
        assert all(result_of(reply)["content"][0]["text"] == REPLY_TEXT for reply in replies)
        before = server.resident_bytes()

        running = f"unread-{secrets.token_hex(4)}"
        async with raw_connection(server.ws_url(accounts.alice), max_queue=1) as ws:
            client = RawClient(ws)
            await client.initialize()
            await send_call(client, running, "sleep", {"seconds": 600})
            # It never reads again; once the server gives up on it, sends fail.
            with contextlib.suppress(ConnectionClosed):
                for n in range(UNREAD_CALLS):
                    call = send_call(client, f"{running}-{n}", "echo", {"text": REPLY_TEXT})
                    await asyncio.wait_for(call, CALL_TIMEOUT)
            await wait_until_async(
                lambda: CLOSED_LINE.search(server.log_text()) is not None,
                CLOSE_TIMEOUT,
                "the server to close the connection that does not read (1008)",
            )
            await asyncio.wait_for(ws.wait_closed(), CLOSE_TIMEOUT)

        match = CLOSED_LINE.search(server.log_text())
        assert match is not None
        assert int(match.group(1)) > OUTBOUND_LIMIT
        # Its call still running was cancelled, and recorded so.
        await asyncio.to_thread(wait_for_status, deployment, running, "cancelled")
        # Another connection is served all along.
        await reader.assert_answers_ping()
        assert result_of(await reader.call_tool("echo", {"text": "still here"}))["content"]
        # The memory its replies held is given back.
        await wait_until_async(
            lambda: server.resident_bytes() < before + RSS_MARGIN,
            SETTLE_TIMEOUT,
            f"the server's memory to return near its {before >> 20} MiB before",
        )


async def test_a_client_that_does_not_read_its_pongs_is_closed(
    server_factory: ServerFactory, accounts: Accounts
) -> None:
    # Pongs bypass the application (uvicorn answers pings itself); they count all the same.
    limit = 1024 * 1024
    server = server_factory(MCP_MAX_OUTBOUND_BYTES_PER_CONNECTION=str(limit))
    closed = re.compile(rf'"WebSocket /mcp" closed with 1008: \d+ bytes .* limit of {limit}\b')
    async with raw_connection(server.ws_url(accounts.alice)) as ws:
        client = RawClient(ws)
        await client.initialize()
        ws.transport.pause_reading()
        with contextlib.suppress(ConnectionClosed):
            for n in range(MAX_PINGS):
                # Unique payloads of the largest size a ping may carry.
                await asyncio.wait_for(ws.ping(n.to_bytes(4, "big") * 31), CALL_TIMEOUT)
                if n % 1000 == 0 and closed.search(server.log_text()):
                    break
        await wait_until_async(
            lambda: closed.search(server.log_text()) is not None,
            CLOSE_TIMEOUT,
            "the server to close the connection that does not read its pongs (1008)",
        )
    async with raw_client(server, accounts.bob) as other:
        await other.assert_answers_ping()
