"""A Streamable HTTP session's next request here is served by the exchange its last one left
idle (mcp_server/http_transport/local.py, `park`), through the full ASGI stack."""

import asyncio
from typing import Any

import orjson
import pytest

from accounts.services import IssuedToken
from config.asgi import router
from mcp_server.http_transport.endpoint import HttpEndpoint
from mcp_server.http_transport.local import LocalHttpSessions
from mcp_server.process_runtime import ProcessRuntime
from tests.ws.test_reference_cycles import ADD, HttpClient, _request

BOTH = b"application/json, text/event-stream"


def _endpoint() -> HttpEndpoint:
    endpoint: HttpEndpoint = router.application_mapping["http"].mcp.endpoint
    return endpoint


def _local() -> LocalHttpSessions:
    return _endpoint().local


def _result(response: dict[str, Any]) -> Any:
    return orjson.loads(response["body"])["result"]["structuredContent"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("history")
async def test_the_next_request_of_a_session_reuses_the_exchange_its_last_left_idle(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    client = HttpClient(runtime, issued.raw)
    await client.initialize()
    assert client.session_id is not None
    assert _local().parked(client.session_id) is None  # initialize's is not kept
    assert _result(await client.send(_request(1, "tools/call", ADD), accept=BOTH)) == {"result": 3}
    parked = _local().parked(client.session_id)
    assert parked is not None and parked.idle
    assert _result(await client.send(_request(2, "tools/call", ADD), accept=BOTH)) == {"result": 3}
    streamed = await client.send(_request(3, "tools/call", ADD), accept=b"text/event-stream")
    assert b'"structuredContent":{"result":3' in streamed["body"]
    assert _local().parked(client.session_id) is parked
    assert not parked.session.is_closed


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("history")
async def test_requests_in_flight_together_get_exchanges_of_their_own(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    client = HttpClient(runtime, issued.raw)
    await client.initialize()
    await client.send(_request(1, "tools/call", ADD), accept=BOTH)
    parked = _local().parked(client.session_id or "")
    slow = {"name": "process_batch", "arguments": {"count": 3, "item_ms": 50}}
    batch, added = await asyncio.gather(
        client.send(_request(2, "tools/call", slow), accept=BOTH),
        client.send(_request(3, "tools/call", ADD), accept=BOTH),
    )
    assert batch["status"] == 200 and b'"isError":true' not in batch["body"]
    assert _result(added) == {"result": 3}
    kept = _local().parked(client.session_id or "")
    assert kept is not None and kept.idle
    # One of the two took the parked exchange; the other's was new, and one of them is kept.
    assert parked is not None and (kept is parked or parked.session.is_closed)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("history")
async def test_ending_the_session_closes_its_parked_exchange(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    client = HttpClient(runtime, issued.raw)
    await client.initialize()
    await client.send(_request(1, "tools/call", ADD), accept=BOTH)
    session_id = client.session_id or ""
    parked = _local().parked(session_id)
    assert parked is not None
    await _endpoint().end_session(session_id, "ended by the client", runtime.bus.layer)
    assert _local().parked(session_id) is None
    assert parked.session.is_closed
    ended = await client.send(_request(2, "tools/call", ADD), accept=BOTH)
    assert ended["status"] == 404
