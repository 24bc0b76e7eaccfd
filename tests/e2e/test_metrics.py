"""/metrics of a real server: what it counts, how bounded its labels are, who may read it."""

import secrets
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import ALPHA, Accounts, ServerFactory
from tests.e2e.metrics_support import read_files, scrape, scraped
from tests.e2e.support import (
    RECV_TIMEOUT,
    Deployment,
    RawClient,
    ServerProcess,
    error_of,
    raw_client,
    raw_connection,
    result_of,
    start_server,
    wait_until,
)

# Another address of this host: the server sees a client that is not 127.0.0.1.
OTHER_ADDRESS = "127.0.0.2"
BATCH = {"count": 300, "item_ms": 0}


@pytest.fixture(scope="module")
def metered(server_factory: ServerFactory) -> ServerProcess:
    """A server of its own, so that its counts are this module's alone."""
    return server_factory(
        MCP_METRICS="true", MCP_PROGRESS_MAX_RATE="5", MCP_MAX_OPERATIONS_PER_CONNECTION="1"
    )


async def test_counts_connections_requests_tool_calls_and_progress(
    metered: ServerProcess, accounts: Accounts
) -> None:
    unknown_tool = f"no-such-tool-{secrets.token_hex(8)}"
    unknown_method = f"no/such-method-{secrets.token_hex(8)}"
    async with raw_client(metered, accounts.alice) as client:
        open_now = scraped(metered)
        assert open_now.value("mcp_connections_open", transport="websocket") == 1
        await client.assert_answers_ping()
        assert result_of(await client.call_tool("echo", {"text": "hi"}))["content"]
        error_of(await client.call_tool(unknown_tool, {}))
        # Refused before any handler runs: counted too, under a bounded label.
        error_of(await client.request(unknown_method, {}))
        batch = result_of(
            await client.request(
                "tools/call",
                {"name": "process_batch", "arguments": BATCH, "_meta": {"progressToken": "p"}},
            )
        )
        assert batch["structuredContent"]["processed"] == BATCH["count"]
        # One run slot per connection: an echo sent behind a sleep waits for it.
        sleeping = await _send_call(client, "sleep", {"seconds": 0.2})
        waiting = await _send_call(client, "echo", {"text": "behind"})
        result_of(await client.recv_response(sleeping))
        result_of(await client.recv_response(waiting))
        during = scraped(metered)

    assert during.value("mcp_requests_total", method="ping", outcome="ok") >= 1
    assert during.value("mcp_requests_total", method="initialize", outcome="ok") == 1
    assert during.value("mcp_requests_total", method="tools/call", outcome="ok") == 4
    assert during.value("mcp_requests_total", method="tools/call", outcome="error") == 1
    assert during.value("mcp_requests_total", method="other", outcome="error") == 1
    calls = "mcp_tool_call_duration_seconds_count"
    assert during.value(calls, tool="echo", status="succeeded") == 2
    assert during.value(calls, tool="process_batch", status="succeeded") == 1
    # Only the call that waited is observed (the others got their slot at once).
    assert during.value("mcp_queue_wait_seconds_count") == 1
    assert during.value("mcp_queue_wait_seconds_bucket", le="0.1") == 0
    # 300 reports at most 5 a second: the first and the last sent, most coalesced; all told.
    sent = during.value("mcp_progress_notifications_total", outcome="sent")
    coalesced = during.value("mcp_progress_notifications_total", outcome="coalesced")
    assert sent >= 2
    assert sent + coalesced == BATCH["count"]
    # Bounded labels: no unknown tool name, token, user or connection id; no tenant by default.
    values = during.label_values()
    assert unknown_tool not in values and unknown_method not in values
    assert not any(accounts.alice.removeprefix("mcp_") in value for value in values)
    assert ALPHA not in values
    assert all("tenant" not in labels for _, labels, _ in during.samples())

    wait_until(
        lambda: scraped(metered).value("mcp_connections_open", transport="websocket") == 0,
        RECV_TIMEOUT,
        "the closed connection to leave the open count",
    )


async def test_counts_refusals_with_a_tenant_label_when_asked(
    server_factory: ServerFactory, accounts: Accounts
) -> None:
    server = server_factory(
        MCP_METRICS_TENANT_LABEL="true",
        MCP_MAX_CONNECTIONS_PER_USER="1",
        MCP_MESSAGE_RATE_PER_USER="0.01",
        MCP_MESSAGE_BURST_PER_USER="3",
    )
    async with raw_client(server, accounts.alice) as client:  # initialize: 1 message
        with pytest.raises(InvalidStatus) as refused:
            async with raw_connection(server.ws_url(accounts.alice)):
                pass
        assert refused.value.response.status_code == 429
        answers = [await client.request("ping") for _ in range(4)]
        assert sum("error" in answer for answer in answers) >= 2
        answer = scraped(server)
    assert answer.value("mcp_refusals_total", limit="connections", tenant=ALPHA) == 1
    assert answer.value("mcp_refusals_total", limit="messages_per_user", tenant=ALPHA) >= 2
    assert answer.value("mcp_requests_total", method="ping", outcome="ok", tenant=ALPHA) >= 1
    assert answer.value("mcp_connections_open", transport="websocket", tenant=ALPHA) == 1


async def test_what_a_process_tallied_reaches_the_files_when_it_stops(
    deployment: Deployment, accounts: Accounts, tmp_path: Path
) -> None:
    files = tmp_path / "metrics"
    # No heartbeat round (nor scrape) while it serves: only its exit writes what it counted.
    server = start_server(
        deployment,
        {"PROMETHEUS_MULTIPROC_DIR": str(files), "MCP_OPERATION_LOST_AFTER": "3600"},
    )
    try:
        async with raw_client(server, accounts.alice) as client:
            for _ in range(3):
                assert result_of(await client.call_tool("echo", {"text": "x"}))["content"]
            before_exit = read_files(files)
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_text()[-3000:]
    assert before_exit.value("mcp_requests_total", method="tools/call") == 0
    written = read_files(files)
    assert written.value("mcp_requests_total", method="initialize", outcome="ok") == 1
    assert written.value("mcp_requests_total", method="tools/call", outcome="ok") == 3
    calls = written.value("mcp_tool_call_duration_seconds_count", tool="echo", status="succeeded")
    assert calls == 3
    assert written.value("mcp_connections_open") == 0  # opened and closed; its gauges gone


def test_only_configured_addresses_or_the_credential_may_read(
    server_factory: ServerFactory,
) -> None:
    credential = secrets.token_urlsafe(24)
    default = server_factory(MCP_METRICS_ALLOWED_NETWORKS="127.0.0.1")
    with_token = server_factory(
        MCP_METRICS_ALLOWED_NETWORKS="127.0.0.1", MCP_METRICS_TOKEN=credential
    )
    assert scrape(default).status == 200
    # No credential configured: another address is refused outright.
    assert scrape(default, source=OTHER_ADDRESS).status == 403
    bearer = {"Authorization": f"Bearer {credential}"}
    assert scrape(default, source=OTHER_ADDRESS, headers=bearer).status == 403
    # A credential configured: it opens the page from anywhere, its absence asks for it.
    missing = scrape(with_token, source=OTHER_ADDRESS)
    assert missing.status == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = {"Authorization": f"Bearer {credential}x"}
    assert scrape(with_token, source=OTHER_ADDRESS, headers=wrong).status == 401
    assert scrape(with_token, source=OTHER_ADDRESS, headers=bearer).status == 200
    assert credential not in with_token.log_text()


def test_loopback_is_the_default_and_off_means_no_page(server_factory: ServerFactory) -> None:
    default = server_factory()
    assert scrape(default, source=OTHER_ADDRESS).status == 200  # 127.0.0.0/8 is loopback
    off = server_factory(MCP_METRICS="false")
    assert scrape(off).status == 404


async def _send_call(client: RawClient, name: str, arguments: dict[str, Any]) -> int:
    """Send a tools/call without waiting for its answer; its request id."""
    request_id = client.next_id()
    params = {"name": name, "arguments": arguments}
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    await client.send(message)
    return request_id
