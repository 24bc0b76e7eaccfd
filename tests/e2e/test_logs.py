"""Credentials never reach the server log, in any form a client can send them."""

from urllib.parse import quote

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Accounts
from tests.e2e.support import (
    RECV_TIMEOUT,
    ServerProcess,
    raw_client,
    raw_connection,
    wait_until_async,
)

REDACTED_REQUEST_LINE = '"WebSocket /mcp?token=[redacted]" [accepted]'


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
