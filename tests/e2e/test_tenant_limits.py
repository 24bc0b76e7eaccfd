"""One tenant cannot take the process: message rates, REST budgets, connection caps, failed
authentications per address and login lockout, against real server processes.

Each limit gets a server of its own with that limit set low (and the others left at their
defaults), so no test spends another's budget. Client addresses 127.0.0.2-127.0.0.9 are all
this machine's loopback: binding to one makes the server see another client.
"""

import asyncio
import http.client
import json
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import ALICE, ALPHA, BETA, Accounts, ServerFactory
from tests.e2e.support import (
    HOST,
    RECV_TIMEOUT,
    Deployment,
    RawClient,
    ServerProcess,
    error_of,
    raw_connection,
    result_of,
    wait_until,
    wait_until_async,
)

# Several servers boot in this module, and a login hashes a password: give them time.
pytestmark = pytest.mark.timeout(300)
HTTP_REQUEST_TIMEOUT = 30.0
RATE_LIMITED = -32029
DELTA = "delta"
ERIN = "erin"  # a second member of alpha, for the per-tenant limits
DAVE = "dave"  # the only member of delta, whose overrides a test changes
FRANK = "frank"  # has a password; locked out by the login test
HENRY = "henry"  # has a password; logs in from the address that locked frank out
PASSWORD = "e2e-Limits-Horse-42"
# Low limits, each on a server of its own.
# A token every 5 s: even a slow machine refills a bucket by little while a test floods it.
USER_RATE = {"MCP_MESSAGE_RATE_PER_USER": "0.2", "MCP_MESSAGE_BURST_PER_USER": "6"}
TENANT_RATE = {"MCP_MESSAGE_RATE_PER_TENANT": "0.2", "MCP_MESSAGE_BURST_PER_TENANT": "8"}
CONNECTION_CAPS = {"MCP_MAX_CONNECTIONS_PER_USER": "3", "MCP_MAX_CONNECTIONS_PER_TENANT": "5"}
FAILURES_AND_REST = {"MCP_AUTH_FAILURES_PER_MINUTE": "5", "MCP_API_REQUESTS_PER_MINUTE_USER": "4"}


@dataclass(frozen=True)
class LimitAccounts:
    """Accounts of this module beyond the shared ones (raw tokens)."""

    alice_second: str
    erin: str
    dave: str
    dave_second: str


@pytest.fixture(scope="module")
def limit_accounts(deployment: Deployment, accounts: Accounts) -> LimitAccounts:
    """Erin in alpha, dave alone in delta (two tokens), frank and henry with passwords, and a
    second token of alice.

    One `manage.py shell` makes them all (the account commands are proved by conftest's).
    """
    output = deployment.shell(
        "from accounts.services import tenant_create, token_create, user_create; "
        "from django.contrib.auth import get_user_model; "
        f"tenant_create(slug={DELTA!r}); "
        f"erin = user_create(username={ERIN!r}, tenant_slug={ALPHA!r}); "
        f"dave = user_create(username={DAVE!r}, tenant_slug={DELTA!r}); "
        f"user_create(username={FRANK!r}, tenant_slug={BETA!r}, password={PASSWORD!r}); "
        f"user_create(username={HENRY!r}, tenant_slug={BETA!r}, password={PASSWORD!r}); "
        f"alice = get_user_model().objects.get(username={ALICE!r}); "
        "print(token_create(user=alice, name='alice-second').raw); "
        "print(token_create(user=erin, name='erin-main').raw); "
        "print(token_create(user=dave, name='dave-main').raw); "
        "print(token_create(user=dave, name='dave-second').raw)"
    )
    second, erin, dave, dave_second = output.split()[-4:]
    assert all(raw.startswith("mcp_") for raw in (second, erin, dave, dave_second)), output
    return LimitAccounts(alice_second=second, erin=erin, dave=dave, dave_second=dave_second)


@asynccontextmanager
async def connected(
    server: ServerProcess, token: str, local_address: str | None = None
) -> AsyncIterator[RawClient]:
    """An initialized RawClient (initialize and notifications/initialized: two messages)."""
    async with raw_connection(server.ws_url(token), local_address=local_address) as ws:
        client = RawClient(ws)
        await client.initialize()
        yield client


async def refused_handshake(
    server: ServerProcess, token: str, local_address: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A handshake that must be refused: its HTTP status, JSON body and headers."""
    with pytest.raises(InvalidStatus) as refused:
        async with raw_connection(server.ws_url(token), local_address=local_address):
            pass
    response = refused.value.response
    body = json.loads(response.body or b"null")
    assert isinstance(body, dict), response.body
    return response.status_code, body, {k.lower(): v for k, v in response.headers.raw_items()}


async def pings_until_answered(client: RawClient, seconds: float) -> dict[str, Any]:
    """Ping, waiting as long as each refusal says, until a ping succeeds (or time runs out)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await client.request("ping")
        if "result" in response:
            return response
        data = error_of(response)["data"]
        assert time.monotonic() < deadline, f"still refused after {seconds} s: {response}"
        await asyncio.sleep(data["retryAfterMs"] / 1000)  # the wait the server asks for


async def flood(client: RawClient, count: int) -> list[dict[str, Any]]:
    """Send `count` pings in one go, then read their `count` responses."""
    first = client.next_id()
    ids = [first, *(client.next_id() for _ in range(count - 1))]
    for request_id in ids:
        await client.send({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
    return [await client.recv_response(request_id) for request_id in ids]


def http_get(
    server: ServerProcess, path: str, token: str | None = None, local_address: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET `path` from `local_address`; status, headers (lower-case names), body."""
    source = (local_address, 0) if local_address else None
    conn = http.client.HTTPConnection(
        HOST, server.port, timeout=HTTP_REQUEST_TIMEOUT, source_address=source
    )
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- WebSocket message rates -----------------------------------------------------------------


async def test_over_rate_requests_get_retry_data_and_the_connection_stays_open(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**USER_RATE)
    async with connected(server, accounts.bob) as client, connected(server, accounts.bob) as other:
        # Four of the six-message burst went on the two handshakes; one more every 5 s.
        replies = await flood(client, 12)
        answered = [reply for reply in replies if "result" in reply]
        refused = [error_of(reply) for reply in replies if "result" not in reply]
        assert 1 <= len(answered) <= 6, replies  # never more than the burst
        assert refused, replies
        for error in refused:
            assert error["code"] == RATE_LIMITED, error
            assert error["data"]["limit"] == "messages per user", error
            assert error["data"]["retryAfterMs"] > 0, error
        # The bucket is the user's: bob's other connection is refused too, ...
        assert error_of(await other.request("ping"))["data"]["limit"] == "messages per user"
        # ... notifications over the rate are dropped unanswered, ...
        await client.notify("notifications/cancelled", {"requestId": 999})
        # ... another user is not limited, and once the bucket refills bob is served again.
        async with connected(server, accounts.alice) as alice:
            result_of(await alice.request("ping"))
        result_of(await pings_until_answered(client, RECV_TIMEOUT * 3))
    # Closing, the server says what the connections were refused.
    wait_until(
        lambda: "notifications dropped over the message rate" in server.log_text(),
        RECV_TIMEOUT,
        "the count of refused messages in the log",
    )


async def test_a_tenant_rate_is_shared_by_its_users(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**TENANT_RATE)
    async with connected(server, accounts.alice) as alice:
        await flood(alice, 8)  # with the handshake, more than alpha's burst of 8
        async with raw_connection(server.ws_url(limit_accounts.erin)) as ws:
            erin = RawClient(ws)  # erin has sent nothing yet: her own bucket is full
            errors = [error_of(reply) for reply in await flood(erin, 4) if "result" not in reply]
            assert errors, "erin was served although alpha's burst was spent"
            assert {error["code"] for error in errors} == {RATE_LIMITED}, errors
            assert {error["data"]["limit"] for error in errors} == {"messages per tenant"}, errors
        async with connected(server, accounts.bob) as bob:  # tenant beta has its own bucket
            result_of(await bob.request("ping"))


# --- connection caps -------------------------------------------------------------------------


async def open_connections(
    stack: AsyncExitStack, server: ServerProcess, token: str, count: int
) -> list[ClientConnection]:
    """`count` more open (handshaken) connections of `token`, closed with `stack`."""
    return [
        await stack.enter_async_context(raw_connection(server.ws_url(token))) for _ in range(count)
    ]


async def handshake_status(server: ServerProcess, token: str) -> int:
    """101 when a handshake of `token` is accepted now (then closed again), else the status."""
    try:
        async with raw_connection(server.ws_url(token)):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def admitted(server: ServerProcess, token: str) -> bool:
    """Whether a handshake of `token` is accepted now; a refusal must be the cap's 429."""
    status = await handshake_status(server, token)
    assert status in (101, 429), status
    return status == 101


async def test_connections_per_user_are_capped_while_others_connect(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**CONNECTION_CAPS)
    async with AsyncExitStack() as stack:
        held = await open_connections(stack, server, accounts.bob, 3)
        status, body, _ = await refused_handshake(server, accounts.bob)
        assert status == 429, body
        assert body["error"] == ("too many connections for this user on this server (limit 3)"), (
            body
        )
        # Another tenant connects and calls, the REST API and /healthz answer.
        async with connected(server, accounts.carol) as carol:
            result_of(await carol.request("ping"))
        assert http_get(server, "/api/tools/", accounts.carol)[0] == 200
        assert server.health_status() == 200
        # Bob's open connections still work.
        for ws in held:
            client = RawClient(ws)
            await client.initialize()
            result_of(await client.request("ping"))


async def open_when_released(
    stack: AsyncExitStack, server: ServerProcess, token: str, count: int
) -> None:
    """Open `count` connections, retrying while the server still counts closed ones (it
    releases a connection after its socket ends: no event reaches the client)."""

    async def one_opened() -> bool:
        try:
            await stack.enter_async_context(raw_connection(server.ws_url(token)))
        except InvalidStatus as refused:
            status = refused.response.status_code
        else:
            return True
        assert status == 429, status
        return False

    for _ in range(count):
        await wait_until_async(one_opened, RECV_TIMEOUT, "closed connections to be released")


async def test_the_connection_count_is_exact_under_churn(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**CONNECTION_CAPS)
    for _round in range(3):
        async with AsyncExitStack() as stack:
            held = await open_connections(stack, server, accounts.carol, 3)
            # Refused handshakes hold nothing: asking again and again changes no count.
            assert [await admitted(server, accounts.carol) for _ in range(3)] == [False] * 3
            # Drop one without a closing handshake, close one properly, keep one.
            held[0].transport.abort()
            await held[1].close()
            await open_when_released(stack, server, accounts.carol, 2)
            assert not await admitted(server, accounts.carol)  # exactly three again
    # Every connection is gone: the user has the whole cap again, and no more.
    async with AsyncExitStack() as stack:
        await open_when_released(stack, server, accounts.carol, 3)
        assert not await admitted(server, accounts.carol)


async def test_connections_per_tenant_are_capped(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**CONNECTION_CAPS)
    async with AsyncExitStack() as stack:
        await open_connections(stack, server, accounts.alice, 3)
        await open_connections(stack, server, limit_accounts.erin, 2)  # alpha's five
        status, body, _ = await refused_handshake(server, limit_accounts.erin)
        assert status == 429, body
        assert "for this tenant" in body["error"] and "(limit 5)" in body["error"], body
        async with connected(server, accounts.bob) as bob:
            result_of(await bob.request("ping"))


async def test_a_tenant_override_in_the_database_applies_to_new_connections(
    deployment: Deployment,
    server_factory: ServerFactory,
    limit_accounts: LimitAccounts,
) -> None:
    server = server_factory(**CONNECTION_CAPS)
    async with AsyncExitStack() as stack:
        first = await open_connections(stack, server, limit_accounts.dave, 2)
        deployment.update_one(
            "UPDATE accounts_tenant SET limit_connections_per_user = %s WHERE slug = %s", 1, DELTA
        )
        try:
            # A plain UPDATE announces nothing: the server keeps dave's first token's caller
            # for MCP_TOKEN_CACHE_SECONDS (accounts/token_lookups.py). His other token is
            # looked up now, with the tenant's new limits.
            status, body, _ = await refused_handshake(server, limit_accounts.dave_second)
            assert status == 429, body
            assert body["error"].endswith("(limit 1)"), body
            client = RawClient(first[0])  # open connections are left alone
            await client.initialize()
            result_of(await client.request("ping"))
        finally:
            deployment.update_one(
                "UPDATE accounts_tenant SET limit_connections_per_user = %s WHERE slug = %s",
                None,
                DELTA,
            )


# --- failed authentications per client address ----------------------------------------------

INVALID = "mcp_" + "x" * 43


async def test_invalid_token_handshakes_are_refused_per_address_without_a_lookup(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**FAILURES_AND_REST)
    attacker, bystander = "127.0.0.2", "127.0.0.4"
    for attempt in range(5):
        status, body, _ = await refused_handshake(server, f"{INVALID}{attempt}", attacker)
        assert (status, body["error"]) == (401, "invalid token"), body
    status, body, headers = await refused_handshake(server, INVALID, attacker)
    assert status == 429, body
    assert "too many failed authentications" in body["error"], body
    assert int(headers["retry-after"]) > 0, headers
    # A valid token from that address is refused too: the token was not even looked up.
    status, body, _ = await refused_handshake(server, accounts.alice, attacker)
    assert status == 429, body
    # The REST API shares the address's budget ...
    status, headers, _ = http_get(server, "/api/tools/", accounts.alice, attacker)
    assert status == 429 and int(headers["retry-after"]) > 0, headers
    # ... and every other address is served as before.
    async with connected(server, accounts.alice, local_address=bystander) as alice:
        result_of(await alice.request("ping"))
    assert http_get(server, "/api/tools/", accounts.bob, bystander)[0] == 200


async def test_invalid_rest_tokens_are_refused_per_address(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**FAILURES_AND_REST)
    attacker = "127.0.0.3"
    statuses = [http_get(server, "/api/tools/", INVALID, attacker)[0] for _ in range(5)]
    assert statuses == [401] * 5
    status, headers, body = http_get(server, "/api/tools/", INVALID, attacker)
    assert status == 429, body
    assert int(headers["retry-after"]) > 0, headers
    assert b"too many failed authentications" in body, body
    status, _, _ = await refused_handshake(server, accounts.alice, attacker)
    assert status == 429


# --- REST budgets ----------------------------------------------------------------------------


def test_two_tokens_of_one_user_share_one_rest_budget(
    server_factory: ServerFactory, accounts: Accounts, limit_accounts: LimitAccounts
) -> None:
    server = server_factory(**FAILURES_AND_REST)
    tokens = (accounts.alice, limit_accounts.alice_second)
    for _attempt in range(2):
        started = time.monotonic()
        served = 0
        while True:
            status, headers, body = http_get(server, "/api/tools/", tokens[served % 2])
            if status != 200:
                break
            served += 1
            assert served <= 8, "two tokens got more than two minutes of one user's budget"
        assert status == 429, body
        retry_after = int(headers["retry-after"])
        assert 0 < retry_after <= 60, headers
        elapsed = time.monotonic() - started
        if 60 - retry_after > elapsed + 1:  # the whole run fell within one counting minute
            assert served == 4, f"{served} requests served on a budget of 4 per user"
            break
        time.sleep(retry_after)  # the minute turned during the run: wait it out, try again
    else:
        pytest.fail("could not run within one counting minute")
    assert http_get(server, "/api/tools/", accounts.bob)[0] == 200  # another user


# --- login lockout ---------------------------------------------------------------------------

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def post_login(server: ServerProcess, path: str, username: str, password: str) -> int:
    """Fetch the login form, post it back with `username` and `password`; the status."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=HTTP_REQUEST_TIMEOUT)
    try:
        conn.request("GET", path)
        page = conn.getresponse()
        html = page.read().decode()
        cookie = page.getheader("Set-Cookie", "").split(";", 1)[0]
        match = _CSRF_INPUT.search(html)
        assert match and cookie.startswith("csrftoken="), (page.status, html[:300])
        form = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": match.group(1), "username": username, "password": password}
        )
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", path, body=form, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize(("path", "username"), [("/login/", FRANK), ("/admin/login/", "ghost")])
def test_login_locks_a_username_out_after_five_failures(
    server: ServerProcess, limit_accounts: LimitAccounts, path: str, username: str
) -> None:
    statuses = [post_login(server, path, username, "wrong-password") for _ in range(5)]
    assert statuses[:4] == [200] * 4, statuses  # the form again, with an error
    assert statuses[4] == 429, statuses  # the fifth failure locks the pair out
    assert post_login(server, path, username, PASSWORD) == 429  # even the right password
    if path == "/login/":
        # Another username from the same address still logs in.
        assert post_login(server, path, HENRY, PASSWORD) == 302
