"""A connection reads its channel-layer channel only once something may be sent to it
(mcp_server/consumer_channel.py): idle connections cost no reader task, tasks still stream."""

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from channels.layers import get_channel_layer

from mcp_server.consumers import McpConsumer
from mcp_server.process_runtime import ProcessRuntime
from tests.ws.conftest import Client, ws_connect

pytestmark = pytest.mark.django_db(transaction=True)

IDLE = 20


def _consumers(runtime: ProcessRuntime) -> list[McpConsumer]:
    return [session.listener._listen.__self__ for session in runtime.connections]


async def _until(client: Client, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        message = await client.receive()
        if predicate(message):
            return dict(message)


async def test_idle_connections_run_no_task_of_their_own(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    """Channels' consumers keep two tasks per connection waiting (the client's next frame and
    the channel's next message); these wait for the client's frame in the connection's own."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(ws_connect(runtime, token_path()))
        await first[0].initialize()
        before = len(asyncio.all_tasks())
        for _ in range(IDLE):
            client, _ = await stack.enter_async_context(ws_connect(runtime, token_path()))
            await client.initialize()
        # Each connection's application runs as one task (the test client's, uvicorn's).
        assert len(asyncio.all_tasks()) - before == IDLE
        assert not any(consumer.listening for consumer in _consumers(runtime))


async def test_a_task_makes_its_connection_listen_and_its_events_arrive(
    runtime: ProcessRuntime,
    token_path: Callable[..., str],
) -> None:
    async with (
        ws_connect(runtime, token_path()) as (client, _),
        ws_connect(runtime, token_path()) as (idle, _),
    ):
        await client.initialize()
        await idle.initialize()
        client._next_id += 1
        params = {
            "name": "process_batch",
            "arguments": {"count": 20, "item_ms": 1},
            "task": {"ttl": 5000},
            "_meta": {"progressToken": "p"},
        }
        await client.send(
            {"jsonrpc": "2.0", "id": client._next_id, "method": "tools/call", "params": params}
        )
        status = await _until(client, lambda m: m.get("method") == "notifications/tasks/status")
        assert status["params"]["status"] == "completed"
        listening = {id(c): c.listening for c in _consumers(runtime)}
        assert sorted(listening.values()) == [False, True]


async def test_a_message_sent_before_listening_is_not_lost(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        (consumer,) = _consumers(runtime)
        layer = get_channel_layer()
        await layer.send(
            consumer.channel_name,
            {"type": "mcp.broadcast", "level": "notice", "data": "early"},
        )
        assert not consumer.listening
        consumer.listen()
        # A type the consumer has no handler for ends the connection with 1011, as in Channels.
        assert await client.closed_with() == (1011, "")
