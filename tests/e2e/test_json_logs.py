"""LOG_FORMAT=json: a real server writes one JSON object per line, with its connection's ids and
traceparent, and no credential."""

import json
from typing import Any

from tests.e2e.conftest import ALPHA, Accounts, ServerFactory
from tests.e2e.support import RECV_TIMEOUT, RawClient, raw_connection, wait_until

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a log, each of which must be a JSON object."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(record, dict) for record in records)
    return records


async def test_lines_are_json_objects_with_the_connection_context(
    server_factory: ServerFactory, accounts: Accounts
) -> None:
    server = server_factory(LOG_FORMAT="json", LOG_LEVEL="DEBUG")
    async with raw_connection(
        server.ws_url(accounts.alice_logs), headers={"traceparent": TRACEPARENT}
    ) as ws:
        client = RawClient(ws)
        await client.initialize()
        # The session logs an unknown notification at debug level, inside the connection.
        await client.notify("notifications/unheard-of")
        await client.assert_answers_ping()

    def ignored() -> list[dict[str, Any]]:
        return [
            record
            for record in json_lines(server.log_text())
            if "ignored notification notifications/unheard-of" in record["message"]
        ]

    wait_until(lambda: bool(ignored()), RECV_TIMEOUT, "the debug line of the notification")
    (record,) = ignored()
    assert record["level"] == "DEBUG"
    assert record["logger"] == "mcp_server.session"
    assert record["time"].endswith("+00:00")
    assert record["tenant"] == ALPHA
    assert isinstance(record["user"], int)
    assert record["connection"]
    assert record["traceparent"] == TRACEPARENT
    assert "request" not in record  # not inside a request

    log = server.log_text()
    assert accounts.alice_logs not in log
    assert accounts.alice_logs.removeprefix("mcp_") not in log
    # uvicorn's line of the handshake, masked as in plain lines.
    assert any('"WebSocket /mcp?token=[redacted]"' in r["message"] for r in json_lines(log))
    assert all("color_message" not in r for r in json_lines(log))


def test_the_default_stays_human_readable(server_factory: ServerFactory) -> None:
    server = server_factory()
    first = server.log_text().splitlines()[0]
    assert not first.startswith("{")
    assert " INFO " in first
