"""The server on the Redis channel layer: it works, and an idle connection outlives redis-py 8's
5 s default socket timeout (channels-redis blocks 5 s on its channel: without
`socket_timeout=None` the consumer dies with close code 1011)."""

import asyncio

import pytest

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import ServerProcess, raw_client, result_of

# Longer than redis-py 8's 5 s socket timeout plus channels-redis's 5 s blocking pop.
IDLE_WAIT = 6.5


@pytest.fixture
def redis_server(server_factory: ServerFactory, redis_url: str) -> ServerProcess:
    return server_factory(REDIS_URL=redis_url)


async def test_server_on_redis_layer_serves_calls(
    redis_server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(redis_server, accounts.alice) as client:
        result = result_of(await client.call_tool("add", {"a": 1, "b": 2}))
        assert result["structuredContent"] == {"result": 3}
        await client.assert_answers_ping()


async def test_idle_connection_stays_open_past_the_socket_timeout(
    redis_server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(redis_server, accounts.alice) as client:
        await client.assert_answers_ping()
        # Nothing may arrive while idle, neither a message nor a close.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.ws.recv(), timeout=IDLE_WAIT)
        await client.assert_answers_ping()
        result = result_of(await client.call_tool("multiply", {"a": 3, "b": 4}))
        assert result["structuredContent"] == {"result": 12}
    assert redis_server.is_alive()
    log = redis_server.log_text()
    assert "Timeout reading" not in log
    assert "Exception in ASGI application" not in log
