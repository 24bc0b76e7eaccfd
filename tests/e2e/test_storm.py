"""Authentication under a connection storm: many handshakes at once against the real server,
good tokens mixed with wrong, revoked and expired ones (issue 17)."""

import asyncio
import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import RawClient, raw_connection, result_of

# Per kind of credential; the server's per-user connection cap is far above it.
PER_KIND = 25
# The storm's own server, without the failed-authentication budget per address: 75 refusals
# from 127.0.0.1 would spend it (for whichever test shares the server next), and whether a
# refusal is a 401 or a 429 would depend on how the handshakes interleave. The budget has tests
# of its own (test_tenant_limits).
STORM_ENV = {"MCP_AUTH_FAILURES_PER_MINUTE": "0"}
TIMEOUT = 60.0


async def _accepted(url: str, opened: asyncio.Event, release: asyncio.Event) -> str:
    """Open, initialize, answer a call, then hold the connection until `release`."""
    async with raw_connection(url) as ws:
        client = RawClient(ws)
        await client.initialize()
        result = result_of(await client.call_tool("add", {"a": 1, "b": 2}))
        assert result["structuredContent"] == {"result": 3}
        opened.set()
        await release.wait()
        await client.assert_answers_ping()
    return "accepted"


async def _refused(url: str) -> str:
    """The reason a handshake was refused with 401 (fails when it was accepted)."""
    with pytest.raises(InvalidStatus) as refused:
        async with raw_connection(url):
            pass
    body = json.loads(refused.value.response.body or b"null")
    assert body["status"] == refused.value.response.status_code == 401, body
    return str(body["error"])


async def test_wrong_revoked_and_expired_tokens_are_refused_in_a_storm(
    server_factory: ServerFactory, accounts: Accounts
) -> None:
    server = server_factory(**STORM_ENV)
    release = asyncio.Event()
    opened = [asyncio.Event() for _ in range(PER_KIND)]
    wrong = accounts.alice[:-1] + ("A" if accounts.alice[-1] != "A" else "B")
    refusals = {
        wrong: "invalid token",
        accounts.alice_revoked: "token revoked",
        accounts.alice_expired: "token expired",
        "mcp_" + "A" * 43: "invalid token",
    }
    good = [
        asyncio.ensure_future(_accepted(server.ws_url(accounts.alice), opened[i], release))
        for i in range(PER_KIND)
    ]
    # Interleaved with the good ones, so that they queue for the same authentication thread.
    bad = {
        token: [asyncio.ensure_future(_refused(server.ws_url(token))) for _ in range(PER_KIND)]
        for token in refusals
    }
    for token, reason in refusals.items():
        reasons = await asyncio.wait_for(asyncio.gather(*bad[token]), TIMEOUT)
        assert reasons == [reason] * PER_KIND
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), TIMEOUT)
    release.set()
    assert await asyncio.wait_for(asyncio.gather(*good), TIMEOUT) == ["accepted"] * PER_KIND
