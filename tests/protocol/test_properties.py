"""Property tests: the pure protocol layer never fails with anything but a protocol error."""

from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS, INVALID_REQUEST, JsonRpcError, MessageError
from mcp_server.protocol.messages import (
    Notification,
    Request,
    Response,
    error_message,
    notification_message,
    parse_message,
    result_message,
)
from mcp_server.protocol.pagination import decode_cursor, encode_cursor

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

SETTINGS = hypothesis.settings(max_examples=200, deadline=None, derandomize=True, database=None)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
# Objects that look like JSON-RPC messages, so the deeper branches are reached often.
message_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.one_of(st.just("2.0"), json_values),
        "id": st.one_of(st.integers(), st.text(max_size=5), json_values),
        "method": st.one_of(st.sampled_from(["ping", "tools/call", ""]), json_values),
        "params": st.one_of(st.dictionaries(st.text(max_size=5), json_values), json_values),
        "result": json_values,
        "error": st.one_of(st.fixed_dictionaries({"code": st.integers()}), json_values),
    },
)


def _check_refusal(error: JsonRpcError) -> None:
    assert error.code in (INVALID_REQUEST, INVALID_PARAMS)
    if isinstance(error, MessageError):
        assert error.request_id is None or isinstance(error.request_id, str | int)
        # The error reply is itself a well-formed message.
        reply = error_message(error.request_id, error)
        assert reply["error"]["code"] == error.code


def _classify(payload: Any) -> None:
    try:
        message = parse_message(payload)
    except JsonRpcError as exc:
        _check_refusal(exc)
        return
    assert isinstance(message, Request | Notification | Response)
    if isinstance(message, Request | Notification):
        assert isinstance(message.params, dict)
        assert isinstance(message.method, str) and message.method


@SETTINGS
@hypothesis.given(json_values)
def test_parse_message_on_any_json_raises_only_protocol_errors(payload: Any) -> None:
    _classify(payload)


@SETTINGS
@hypothesis.given(message_like)
def test_parse_message_on_message_like_objects(payload: dict[str, Any]) -> None:
    _classify(payload)


@SETTINGS
@hypothesis.given(
    st.one_of(st.integers(), st.text(min_size=1)),
    st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_outgoing_messages_parse_back(request_id: int | str, body: dict[str, Any]) -> None:
    response = parse_message(result_message(request_id, body))
    assert response == Response(request_id, body, None)
    notification = parse_message(notification_message("notifications/x", body))
    assert notification == Notification("notifications/x", body)


@SETTINGS
@hypothesis.given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=1))
def test_cursor_round_trip(offset: int, extra: int) -> None:
    assert decode_cursor(encode_cursor(offset), offset + extra) == offset


@SETTINGS
@hypothesis.given(st.one_of(st.text(max_size=40), json_values), st.integers(0, 100))
def test_decode_cursor_raises_only_invalid_params(cursor: Any, size: int) -> None:
    try:
        offset = decode_cursor(cursor, size)
    except JsonRpcError as exc:
        error: JsonRpcError | None = exc
    else:
        error = None
        assert 0 < offset < size
    assert error is None or error.code == INVALID_PARAMS
