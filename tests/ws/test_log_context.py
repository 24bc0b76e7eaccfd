"""Log lines written while a session handles a request carry its ids and traceparent, as JSON."""

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from config import log_context
from config.log_json import JsonLineFormatter
from config.log_redaction import RedactSecretsFilter
from mcp_server.cluster import messages
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.dispatch import Dispatch
from mcp_server.cluster.worker import request_from_start
from mcp_server.runtime.runner import CallRequest
from mcp_server.tools.catalog import catalog_for
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import PRINCIPAL, call, initialize, make_session

HANDSHAKE_TRACE = "00-11111111111111111111111111111111-2222222222222222-01"
REQUEST_TRACE = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
TOKEN = "mcp_" + "S" * 43
# The logger of tool failures: it writes one line inside the request and its operation.
INVOKE_LOGGER = "mcp_server.runtime.invoke"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the invoke logger and this module's logger write, formatted as LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    handler.addFilter(log_context.LogContextFilter())
    handler.setFormatter(JsonLineFormatter())
    loggers = [logging.getLogger(INVOKE_LOGGER), logging.getLogger(__name__)]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield stream
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def boom() -> str:
    """Fail unexpectedly (the server logs it)."""
    raise RuntimeError("unexpected")


async def _call_boom(params_meta: dict[str, Any] | None, stream: io.StringIO) -> dict[str, Any]:
    registry = ToolRegistry()
    registry.register(build_tool(boom))
    session, outbox = make_session(registry)
    scope = {"principal": PRINCIPAL, "headers": [(b"traceparent", HANDSHAKE_TRACE.encode())]}
    log_context.bind_connection(scope, "conn-1")
    await initialize(session, outbox)
    message = call(7, "boom")
    if params_meta is not None:
        message["params"]["_meta"] = params_meta
    await session.receive(message)
    reply = await outbox.response(7)
    assert reply["result"]["isError"] is True
    (record,) = [r for r in records(stream) if r["logger"] == INVOKE_LOGGER]
    return record


async def test_a_line_inside_a_request_names_it_its_operation_and_its_traceparent(
    json_log: io.StringIO,
) -> None:
    record = await _call_boom({"traceparent": REQUEST_TRACE}, json_log)
    assert record["level"] == "ERROR"
    assert record["tenant"] == PRINCIPAL.tenant_slug
    assert record["user"] == PRINCIPAL.user_id
    assert record["connection"] == "conn-1"
    assert record["request"] == "7"
    assert len(record["operation"]) == 36
    assert record["traceparent"] == REQUEST_TRACE
    assert "RuntimeError: unexpected" in record["exc_info"]

    # Once answered, the request is no longer the context of what is logged.
    logging.getLogger(__name__).warning("after")
    after = records(json_log)[-1]
    assert after["message"] == "after"
    assert "request" not in after and "operation" not in after
    assert after["traceparent"] == HANDSHAKE_TRACE


async def test_without_its_own_the_request_has_the_handshake_traceparent(
    json_log: io.StringIO,
) -> None:
    record = await _call_boom(None, json_log)
    assert record["traceparent"] == HANDSHAKE_TRACE


async def test_a_traceparent_that_is_not_one_is_never_logged(json_log: io.StringIO) -> None:
    record = await _call_boom({"traceparent": f"00-{TOKEN}-01"}, json_log)
    assert record["traceparent"] == HANDSHAKE_TRACE
    assert TOKEN.removeprefix("mcp_") not in json_log.getvalue()


def test_secrets_in_messages_extras_and_tracebacks_are_masked(json_log: io.StringIO) -> None:
    logger = logging.getLogger(__name__)
    try:
        raise ValueError(f"GET /mcp?token={TOKEN}")
    except ValueError:
        logger.exception("failed %s", f"Bearer {TOKEN}", extra={"path": f"/x?token={TOKEN}"})
    written = json_log.getvalue()
    assert TOKEN.removeprefix("mcp_") not in written
    (record,) = records(json_log)
    assert record["message"].startswith("failed Bearer [redacted]")
    assert record["path"] == "/x?token=[redacted]"
    assert "/mcp?token=[redacted]" in record["exc_info"]


async def test_a_call_handed_to_a_worker_keeps_its_context(dispatch: Dispatch) -> None:
    echo = catalog_for(None).get("echo")
    assert echo is not None
    request = CallRequest(
        principal=PRINCIPAL,
        tool=echo,
        arguments={"text": "x"},
        connection_id="conn-1",
        request_id=7,
        progress_token=None,
        operation_id=uuid.uuid4(),
    )
    session, _ = make_session(ToolRegistry())
    layer = InMemoryChannelLayer()
    bus = OperationBus(runner=session.executor.runner, layer=layer, web=True, dispatch=dispatch)
    token = log_context.bind(traceparent=REQUEST_TRACE)
    try:
        await bus.hand_off(request, listener="listener")
    finally:
        log_context.reset(token)
    # In the worker (its own task), from the message alone.
    (delivery,) = await dispatch.take("worker", 1)
    start = messages.OperationStart.decode(delivery.message)
    assert start.traceparent == REQUEST_TRACE
    log_context.bind_call(request_from_start(start), start.traceparent)
    context = log_context.current()
    assert (context.tenant, context.user) == (PRINCIPAL.tenant_slug, PRINCIPAL.user_id)
    assert (context.connection, context.request) == ("conn-1", "7")
    assert context.traceparent == REQUEST_TRACE


def test_a_traceparent_in_a_hand_off_that_is_not_one_is_dropped() -> None:
    message = {
        "type": messages.OPERATION_START,
        "id": str(uuid.uuid4()),
        "principal": {},
        "tool": "echo",
        "traceparent": f"00-{TOKEN}-01",
    }
    assert messages.OperationStart.decode(message).traceparent is None
