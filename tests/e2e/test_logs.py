"""Credentials never reach the server log, in any form a client can send them."""

import asyncio
from urllib.parse import quote, unquote

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Accounts
from tests.e2e.support import (
    RECV_TIMEOUT,
    RawClient,
    ServerProcess,
    raw_client,
    raw_connection,
    wait_until_async,
)

REDACTED_REQUEST_LINE = '"WebSocket /mcp?token=[redacted]" [accepted]'


def percent_encoded(text: str) -> str:
    """Every byte of `text` percent-encoded: `token` becomes `%74%6F%6B%65%6E`."""
    return "".join(f"%{byte:02X}" for byte in text.encode())


def decoded(text: str) -> str:
    """`text` percent-decoded until nothing changes: what a reader of the log could recover."""
    for _ in range(5):
        text = unquote(text)
    return text


async def test_query_token_is_redacted_in_the_request_line(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice_logs) as client:
        await client.assert_answers_ping()
    await wait_until_async(
        lambda: REDACTED_REQUEST_LINE in server.log_text(),
        RECV_TIMEOUT,
        "the redacted WebSocket request line in the server log",
    )
    log = server.log_text()
    assert accounts.alice_logs not in log
    assert quote(accounts.alice_logs, safe="") not in log
    # Not even the random part after the recognisable prefix.
    assert accounts.alice_logs.removeprefix("mcp_") not in log


async def test_refused_tokens_are_redacted_too(server: ServerProcess, accounts: Accounts) -> None:
    never_issued = "mcp_" + "Q" * 43
    for token in (never_issued, accounts.alice_revoked):
        with pytest.raises(InvalidStatus):
            async with raw_connection(server.ws_url(token)):
                pass
    await wait_until_async(
        lambda: '"WebSocket /mcp?token=[redacted]" 401' in server.log_text(),
        RECV_TIMEOUT,
        "the redacted refused request line in the server log",
    )
    log = server.log_text()
    assert never_issued.removeprefix("mcp_") not in log
    assert accounts.alice_revoked.removeprefix("mcp_") not in log


async def test_no_issued_token_appears_anywhere_in_any_log(
    server: ServerProcess, accounts: Accounts
) -> None:
    # Use every token once more (header and query) so each had its chance to leak.
    for token in accounts.all_tokens():
        for url, headers in (
            (server.ws_url(token), None),
            (server.ws_url(), {"Authorization": f"Bearer {token}"}),
        ):
            try:
                async with raw_connection(url, headers=headers):
                    pass
            except InvalidStatus:
                pass
    log = server.log_text()
    assert "[redacted]" in log
    for token in accounts.all_tokens():
        assert token.removeprefix("mcp_") not in log


async def test_refused_handshake_is_not_logged_as_an_error(
    server: ServerProcess, accounts: Accounts
) -> None:
    """A client's bad credentials are the client's problem: INFO, never ERROR.

    Anything that pages on ERROR lines (log alerting, Sentry's logging integration) would
    otherwise fire on every rejected token.
    """
    with pytest.raises(InvalidStatus):
        async with raw_connection(server.ws_url()):
            pass
    # The refused connection's handling ends within a few loop turns of its response; a whole
    # session opened after it gives the server ample time to log whatever it logs about it.
    async with raw_client(server, accounts.alice) as client:
        await client.assert_answers_ping()
    await wait_until_async(
        lambda: '"WebSocket /mcp" 401' in server.log_text(),
        RECV_TIMEOUT,
        "the refused request line in the server log",
    )
    errors = {
        line.split(" ERROR ", 1)[1] for line in server.log_text().splitlines() if " ERROR " in line
    }
    assert errors == set(), f"ERROR lines in the server log: {sorted(errors)}"


async def test_a_percent_encoded_query_token_is_redacted_in_the_request_line(
    server: ServerProcess, accounts: Accounts
) -> None:
    """`?%74oken=%6D%63%70…` is `?token=mcp…` to the server: it authenticates, and the log kept
    a form that decodes to the token."""
    token = accounts.alice
    url = f"ws://{server.ws_url().removeprefix('ws://')}?%74oken={percent_encoded(token)}"
    async with raw_connection(url) as ws:
        client = RawClient(ws)
        await client.initialize()
        await client.assert_answers_ping()  # it did authenticate
    await wait_until_async(
        lambda: '"WebSocket /mcp?%74oken=[redacted]" [accepted]' in server.log_text(),
        RECV_TIMEOUT,
        "the redacted percent-encoded request line in the server log",
    )
    assert token.removeprefix("mcp_") not in decoded(server.log_text())


async def test_encoded_tokens_in_rest_query_strings_are_redacted(
    server: ServerProcess, accounts: Accounts
) -> None:
    token = accounts.bob
    bearer = {"Authorization": f"Bearer {accounts.carol}"}
    queries = [
        f"?%74oken={percent_encoded(token)}",  # the name and the value encoded
        f"?TOKEN={token}",  # the name in another case
        f"?page_size=1&note={quote(percent_encoded(token))}",  # a token under any name, twice
    ]
    for query in queries:
        status = await asyncio.to_thread(server.http_status, f"/api/tools/{query}", bearer)
        assert status == 200
    await wait_until_async(
        lambda: server.log_text().count('"GET /api/tools/?') >= len(queries),
        RECV_TIMEOUT,
        "the three REST request lines in the server log",
    )
    log = server.log_text()
    assert '"GET /api/tools/?%74oken=[redacted] HTTP/1.1" 200' in log
    assert '"GET /api/tools/?TOKEN=[redacted] HTTP/1.1" 200' in log
    assert '"GET /api/tools/?page_size=1&note=[redacted] HTTP/1.1" 200' in log
    assert token.removeprefix("mcp_") not in decoded(log)
