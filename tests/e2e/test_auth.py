"""The WebSocket handshake's authentication, against the real server: tokens (header or query),
the Django session cookie with its Origin check, and per-tenant tool enablement."""

from dataclasses import dataclass

import pytest

from tests.e2e.conftest import ALICE, GAMMA, Accounts, ServerFactory
from tests.e2e.support import (
    Deployment,
    RawClient,
    ServerProcess,
    error_of,
    raw_connection,
    refusal,
    result_of,
    run_parallel,
)

# The old default of MCP_ALLOWED_ORIGINS, whatever port was served; servers here use others.
PORT_8000_ORIGIN = "http://127.0.0.1:8000"
FOREIGN_ORIGIN = "https://evil.example"
BUILTIN_TOOLS = {"add", "subtract", "multiply", "divide", "echo"}
GAMMA_TOOLS = ["add", "echo"]


@dataclass(frozen=True)
class AuthSetup:
    """What this module's tests need beyond the shared accounts."""

    session_key: str


@pytest.fixture(scope="module")
def auth_setup(deployment: Deployment, accounts: Accounts) -> AuthSetup:
    """A logged-in browser session for alice; tenant gamma restricted to add and echo."""
    session_key, _ = run_parallel(
        [
            lambda: deployment.create_login_session(ALICE, accounts.alice_password),
            lambda: deployment.set_enabled_tools(GAMMA, GAMMA_TOOLS),
        ]
    )
    assert session_key
    return AuthSetup(session_key=session_key)


async def assert_session_works(
    url: str, *, headers: dict[str, str] | None = None, origin: str | None = None
) -> None:
    """The handshake is accepted with the mcp subprotocol and MCP works on it."""
    async with raw_connection(url, headers=headers, origin=origin) as ws:
        assert ws.subprotocol == "mcp"
        client = RawClient(ws)
        await client.initialize()
        result = result_of(await client.call_tool("add", {"a": 20, "b": 22}))
        assert result["structuredContent"] == {"result": 42}


# --- refused handshakes ---------------------------------------------------------------------


async def test_no_credentials_is_401(server: ServerProcess) -> None:
    status, body, refused = await refusal(server.ws_url())
    assert status == 401
    assert body["status"] == 401
    assert "authentication required" in str(body["error"])
    assert refused.response.headers.get("WWW-Authenticate", "").startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "mcp_" + "A" * 43,  # well-formed but never issued
        "not-a-token",
        "mcp_" + "x" * 300,
    ],
    ids=["unknown", "no-prefix", "too-long"],
)
async def test_wrong_token_is_401(server: ServerProcess, token: str) -> None:
    status, body, _ = await refusal(server.ws_url(token))
    assert status == 401
    assert body == {"error": "invalid token", "status": 401}


async def test_wrong_bearer_header_is_401(server: ServerProcess, accounts: Accounts) -> None:
    # The header wins over the query: a bad header is not rescued by a good query token.
    status, body, _ = await refusal(
        server.ws_url(accounts.alice), headers={"Authorization": "Bearer mcp_" + "B" * 43}
    )
    assert status == 401
    assert body["error"] == "invalid token"


async def test_revoked_token_is_401(server: ServerProcess, accounts: Accounts) -> None:
    status, body, _ = await refusal(server.ws_url(accounts.alice_revoked))
    assert (status, body) == (401, {"error": "token revoked", "status": 401})


async def test_expired_token_is_401(server: ServerProcess, accounts: Accounts) -> None:
    status, body, _ = await refusal(server.ws_url(accounts.alice_expired))
    assert (status, body) == (401, {"error": "token expired", "status": 401})


async def test_revoked_token_in_header_is_401(server: ServerProcess, accounts: Accounts) -> None:
    status, body, _ = await refusal(
        server.ws_url(), headers={"Authorization": f"Bearer {accounts.alice_revoked}"}
    )
    assert (status, body["error"]) == (401, "token revoked")


# --- accepted handshakes --------------------------------------------------------------------


async def test_bearer_header_is_accepted(server: ServerProcess, accounts: Accounts) -> None:
    await assert_session_works(
        server.ws_url(), headers={"Authorization": f"Bearer {accounts.alice}"}
    )


async def test_bearer_scheme_is_case_insensitive(server: ServerProcess, accounts: Accounts) -> None:
    await assert_session_works(server.ws_url(), headers={"Authorization": f"bearer {accounts.bob}"})


async def test_query_token_is_accepted(server: ServerProcess, accounts: Accounts) -> None:
    await assert_session_works(server.ws_url(accounts.alice))


async def test_subprotocol_is_only_selected_when_offered(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_connection(server.ws_url(accounts.alice), subprotocols=None) as ws:
        assert ws.subprotocol is None
        client = RawClient(ws)
        await client.initialize()
        await client.assert_answers_ping()


# --- the Django session cookie --------------------------------------------------------------


async def test_session_cookie_from_the_servers_own_origin_is_accepted(
    server: ServerProcess, auth_setup: AuthSetup
) -> None:
    """MCP_ALLOWED_ORIGINS unset: the console of a server on any port may use its cookie."""
    assert server.port != 8000
    await assert_session_works(
        server.ws_url(),
        headers={"Cookie": f"sessionid={auth_setup.session_key}"},
        origin=server.http_url,  # http://127.0.0.1:<its port>, as the console's page sends
    )
    await assert_session_works(
        f"ws://localhost:{server.port}/mcp",
        headers={"Cookie": f"sessionid={auth_setup.session_key}"},
        origin=f"http://localhost:{server.port}",
    )


@pytest.mark.parametrize(
    "origin",
    [
        PORT_8000_ORIGIN,  # accepted by every server before, whatever its port
        "http://localhost:8000",
        "https://127.0.0.1:{port}",  # another scheme
        "http://127.0.0.1:{port}.evil.example",
        "http://localhost:{port}",  # another host than the handshake's
    ],
)
async def test_session_cookie_from_another_origin_is_403(
    server: ServerProcess, auth_setup: AuthSetup, origin: str
) -> None:
    assert server.port != 8000
    status, body, _ = await refusal(
        server.ws_url(),
        headers={"Cookie": f"sessionid={auth_setup.session_key}"},
        origin=origin.format(port=server.port),
    )
    assert status == 403
    assert "origin" in str(body["error"])


async def test_session_cookie_with_a_host_outside_allowed_hosts_is_403(
    server: ServerProcess, auth_setup: AuthSetup
) -> None:
    """A Host not in ALLOWED_HOSTS (a DNS-rebinding page, say) has no origin of its own."""
    status, _, _ = await refusal(
        server.ws_url(),
        headers={"Cookie": f"sessionid={auth_setup.session_key}", "Host": "rebound.example"},
        origin="http://rebound.example",
    )
    assert status == 403


async def test_session_cookie_from_foreign_origin_is_403(
    server: ServerProcess, auth_setup: AuthSetup
) -> None:
    status, body, _ = await refusal(
        server.ws_url(),
        headers={"Cookie": f"sessionid={auth_setup.session_key}"},
        origin=FOREIGN_ORIGIN,
    )
    assert status == 403
    assert body["status"] == 403
    assert "origin" in str(body["error"])


async def test_session_cookie_without_origin_is_403(
    server: ServerProcess, auth_setup: AuthSetup
) -> None:
    status, body, _ = await refusal(
        server.ws_url(), headers={"Cookie": f"sessionid={auth_setup.session_key}"}
    )
    assert status == 403
    assert "origin" in str(body["error"])


async def test_unknown_session_cookie_is_401(server: ServerProcess, auth_setup: AuthSetup) -> None:
    status, body, _ = await refusal(
        server.ws_url(),
        headers={"Cookie": "sessionid=thisisnotasessionkeyatall0123456"},
        origin=server.http_url,
    )
    assert status == 401
    assert body["status"] == 401


async def test_session_cookie_on_a_server_with_configured_origins(
    server_factory: ServerFactory, auth_setup: AuthSetup
) -> None:
    custom_origin = "https://app.example.test"
    configured = server_factory(MCP_ALLOWED_ORIGINS=custom_origin)
    cookie = {"Cookie": f"sessionid={auth_setup.session_key}"}
    await assert_session_works(configured.ws_url(), headers=cookie, origin=custom_origin)
    # A list replaces the same-origin default: the server's own origin is not on it.
    status, _, _ = await refusal(configured.ws_url(), headers=cookie, origin=configured.http_url)
    assert status == 403


# --- tenant tool enablement -----------------------------------------------------------------


async def test_tenant_sees_and_calls_only_its_enabled_tools(
    server: ServerProcess, accounts: Accounts, auth_setup: AuthSetup
) -> None:
    async with raw_connection(server.ws_url(accounts.carol)) as ws:
        client = RawClient(ws)
        await client.initialize()
        listed = result_of(await client.request("tools/list"))
        assert [tool["name"] for tool in listed["tools"]] == GAMMA_TOOLS
        error = error_of(await client.call_tool("divide", {"a": 1, "b": 2}))
        assert error["code"] == -32602
        assert "divide" in error["message"]
        allowed = result_of(await client.call_tool("add", {"a": 1, "b": 2}))
        assert allowed["structuredContent"] == {"result": 3}


async def test_other_tenant_sees_every_tool(
    server: ServerProcess, accounts: Accounts, auth_setup: AuthSetup
) -> None:
    async with raw_connection(server.ws_url(accounts.alice)) as ws:
        client = RawClient(ws)
        await client.initialize()
        listed = result_of(await client.request("tools/list"))
        assert {tool["name"] for tool in listed["tools"]} >= BUILTIN_TOOLS
        divided = result_of(await client.call_tool("divide", {"a": 1, "b": 2}))
        assert divided["structuredContent"] == {"result": 0.5}
