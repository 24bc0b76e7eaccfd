"""A Redis outage is reported truthfully and survived: `/healthz` stays 200 (the process
answers), `/readyz`, handshakes and REST answer 503 with a reason while Redis is down, open
connections doing inline work go on, and everything recovers by itself when Redis returns.

Each test runs its own `redis-server` on a free port and stops, hangs or restarts it.
"""

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Accounts
from tests.e2e.support import (
    Deployment,
    RawClient,
    RedisProcess,
    ServerProcess,
    free_port,
    raw_client,
    raw_connection,
    result_of,
    start_server,
    wait_until,
)

# How long recovery may take on a loaded machine (retries back off up to 2 s).
RECOVERY_TIMEOUT = 60.0
WAIT = 30.0
OUTAGE_LOG_LINE = "Redis (channel layer) unreachable"
RECOVERY_LOG_LINE = "Redis (channel layer) reachable again"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test only (not started yet)."""
    redis = RedisProcess(port=free_port(), root=tmp_path)
    try:
        yield redis
    finally:
        redis.stop()


@contextmanager
def serving(deployment: Deployment, redis: RedisProcess) -> Iterator[ServerProcess]:
    """A server of the deployment on `redis`, stopped at the end."""
    server = start_server(deployment, {"REDIS_URL": redis.url})
    try:
        yield server
    finally:
        server.stop()


def readiness(server: ServerProcess) -> int:
    """The status of GET /readyz."""
    return server.get_json("/readyz")[0]


async def wait_ready(server: ServerProcess, status: int) -> None:
    """Wait (off the event loop) until /readyz answers `status`."""
    await asyncio.to_thread(
        wait_until, lambda: readiness(server) == status, RECOVERY_TIMEOUT, f"/readyz {status}"
    )


async def handshake_refusal(url: str) -> tuple[int, Any]:
    """Open a handshake that must be refused: its HTTP status and its body (JSON if it is)."""
    with pytest.raises(InvalidStatus) as refused:
        async with raw_connection(url):
            pass
    response = refused.value.response
    try:
        return response.status_code, json.loads(response.body or b"")
    except ValueError:
        return response.status_code, response.body


async def assert_dependency_refusals(server: ServerProcess, accounts: Accounts) -> None:
    """While Redis is down: a handshake, an authenticated REST call and readyz are 503s with a
    reason; healthz is 200."""
    assert server.health_status() == 200
    status, refused = await handshake_refusal(server.ws_url(accounts.alice))
    assert status == 503, refused
    assert "Redis" in str(refused["error"]), refused
    status, body = server.get_json("/api/runs/", accounts.alice)
    assert status == 503, body
    assert body["dependency"] == "redis", body
    assert "Redis" in body["detail"], body
    status, body = server.get_json("/readyz")
    assert status == 503, body
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] != "ok"
    assert body["reason"].startswith("redis: "), body


async def assert_serves(server: ServerProcess, accounts: Accounts) -> None:
    """readyz, a new handshake with a call, and REST all work."""
    status, body = server.get_json("/readyz")
    assert status == 200, body
    assert body == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    async with raw_client(server, accounts.alice) as client:
        added = result_of(await client.call_tool("add", {"a": 2, "b": 3}))
        assert added["structuredContent"] == {"result": 5}
    status, body = server.get_json("/api/runs/", accounts.alice)
    assert status == 200, body


def assert_log_is_truthful(server: ServerProcess, outages: int) -> None:
    """Each outage is logged once (not once per retry), and nothing crashed."""
    log = server.log_text()
    assert log.count(OUTAGE_LOG_LINE) == outages, log
    assert log.count(RECOVERY_LOG_LINE) == outages, log
    assert "Exception in ASGI application" not in log, log
    assert set(re.findall(r'HTTP/1\.1" (5\d\d)', log)) <= {"503"}, log


async def test_redis_unreachable_at_start_is_a_503_and_the_server_recovers_by_itself(
    deployment: Deployment, accounts: Accounts, private_redis: RedisProcess
) -> None:
    with serving(deployment, private_redis) as server:
        await assert_dependency_refusals(server, accounts)
        private_redis.start()
        await wait_ready(server, 200)
        await assert_serves(server, accounts)
    assert_log_is_truthful(server, outages=1)


async def _next_progress(client: RawClient, token: str) -> dict[str, Any]:
    while True:
        message = await client.recv(WAIT)
        assert "id" not in message, f"expected progress, got {message!r}"
        if message.get("method") == "notifications/progress":
            assert message["params"]["progressToken"] == token, message
            return dict(message)
        client.notifications.append(message)


async def test_an_open_connection_doing_inline_work_survives_a_redis_outage(
    deployment: Deployment, accounts: Accounts, private_redis: RedisProcess
) -> None:
    private_redis.start()
    # Arguments no other test uses, to find this call's run in the history.
    arguments = {"count": 100, "item_ms": 199}
    with serving(deployment, private_redis) as server:
        async with raw_client(server, accounts.alice) as client:
            call_id = client.next_id()
            await client.send(
                {
                    "jsonrpc": "2.0",
                    "id": call_id,
                    "method": "tools/call",
                    "params": {
                        "name": "process_batch",
                        "arguments": arguments,
                        "_meta": {"progressToken": "outage"},
                    },
                }
            )
            await _next_progress(client, "outage")
            private_redis.stop()
            await asyncio.to_thread(
                wait_until, lambda: readiness(server) != 200, RECOVERY_TIMEOUT, "the outage seen"
            )
            # The call goes on through the outage, and so does the socket: a ping sent now is
            # answered before the call ends, and progress follows it.
            await client.send({"jsonrpc": "2.0", "id": "in-outage", "method": "ping"})
            assert result_of(await client.recv_response("in-outage")) == {}
            during = await _next_progress(client, "outage")
            assert during["params"]["progress"] < arguments["count"], during
            added = result_of(await client.call_tool("add", {"a": 1, "b": 1}))
            assert added["structuredContent"] == {"result": 2}
            await assert_dependency_refusals(server, accounts)
            private_redis.start()
            await wait_ready(server, 200)
            response = await client.recv_response(call_id, WAIT)
            assert result_of(response)["structuredContent"]["processed"] == arguments["count"]
            await client.assert_answers_ping()
        await assert_serves(server, accounts)
        ours: list[dict[str, Any]] = []

        def recorded() -> bool:
            status, runs = server.get_json("/api/runs/?tool=process_batch", accounts.alice)
            assert status == 200, runs
            ours[:] = [run for run in runs["results"] if run["arguments"] == arguments]
            return [run["status"] for run in ours] != ["running"]

        # History is written behind the reply (every 0.25 s).
        wait_until(recorded, WAIT, "the call's run to be recorded")
        assert [run["status"] for run in ours] == ["succeeded"], ours
    assert_log_is_truthful(server, outages=1)


async def test_a_hung_redis_is_a_503_not_a_hang_and_recovers(
    deployment: Deployment, accounts: Accounts, private_redis: RedisProcess
) -> None:
    private_redis.start()
    with serving(deployment, private_redis) as server:
        async with raw_client(server, accounts.alice) as client:
            private_redis.pause()
            status, body = await asyncio.to_thread(server.get_json, "/api/runs/", accounts.alice)
            assert status == 503, body
            assert body["dependency"] == "redis", body
            status, body = await asyncio.to_thread(server.get_json, "/readyz")
            assert status == 503, body
            assert body["checks"]["redis"] == "unreachable (TimeoutError)", body
            # Inline work needs no Redis.
            await client.assert_answers_ping()
            added = result_of(await client.call_tool("add", {"a": 4, "b": 4}))
            assert added["structuredContent"] == {"result": 8}
            private_redis.resume()
            await wait_ready(server, 200)
            await client.assert_answers_ping()
        await assert_serves(server, accounts)
    log = server.log_text()
    assert "Exception in ASGI application" not in log, log
