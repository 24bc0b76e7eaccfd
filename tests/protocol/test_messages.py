"""parse_message classification and every error path; outgoing message shapes."""

from typing import Any

import pytest

from mcp_server.protocol.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    InvalidRequest,
    JsonRpcError,
    MessageError,
    invalid_params,
    method_not_found,
)
from mcp_server.protocol.messages import (
    Notification,
    Request,
    Response,
    error_message,
    notification_message,
    parse_message,
    readable_id,
    request_message,
    result_message,
)


def _parse_error(payload: Any) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse_message(payload)
    return caught.value


# --- classification ----------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [1, 0, -5, "abc", "", 2**62])
def test_request_with_valid_id(request_id: Any) -> None:
    message = parse_message(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": {"cursor": "x"}}
    )
    assert message == Request(request_id, "tools/list", {"cursor": "x"})


def test_request_without_params_gets_empty_dict() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": 3, "method": "ping"})
    assert isinstance(message, Request)
    assert message.params == {}


def test_params_null_is_empty_dict() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": 3, "method": "ping", "params": None})
    assert isinstance(message, Request)
    assert message.params == {}


def test_notification() -> None:
    message = parse_message(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}
    )
    assert message == Notification("notifications/cancelled", {"requestId": 4})


def test_notification_with_null_params() -> None:
    message = parse_message(
        {"jsonrpc": "2.0", "method": "notifications/initialized", "params": None}
    )
    assert message == Notification("notifications/initialized", {})


def test_response_with_result() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": "s-1", "result": {"ok": True}})
    assert message == Response("s-1", {"ok": True}, None)


def test_response_with_null_result_is_a_result() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": 9, "result": None})
    assert message == Response(9, None, None)


def test_response_with_error() -> None:
    error = {"code": -32601, "message": "nope"}
    message = parse_message({"jsonrpc": "2.0", "id": 9, "error": error})
    assert message == Response(9, None, error)


def test_extra_members_are_ignored() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": 1, "method": "ping", "x-extra": [1, 2]})
    assert message == Request(1, "ping", {})


# --- error paths -------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [None, 1, 1.5, "text", True, [], [{"jsonrpc": "2.0"}]])
def test_non_object_is_invalid_request_with_null_id(payload: Any) -> None:
    error = _parse_error(payload)
    assert isinstance(error, InvalidRequest)
    assert error.code == INVALID_REQUEST
    assert error.request_id is None
    assert error.reply is True


@pytest.mark.parametrize("version", [None, "1.0", "2", 2.0, 2, ["2.0"], "2.0 "])
def test_wrong_jsonrpc_version(version: Any) -> None:
    payload: dict[str, Any] = {"id": 5, "method": "ping"}
    if version is not None:
        payload["jsonrpc"] = version
    error = _parse_error(payload)
    assert error.code == INVALID_REQUEST
    assert "jsonrpc" in error.message
    # The id is usable, so the error reply carries it.
    assert error.request_id == 5
    assert error.reply is True


def test_wrong_jsonrpc_with_unusable_id_answers_with_null() -> None:
    error = _parse_error({"jsonrpc": "1.0", "id": 1.5, "method": "ping"})
    assert error.code == INVALID_REQUEST
    assert error.request_id is None


@pytest.mark.parametrize("bad_id", [None, 1.0, 1.5, True, False, {"a": 1}, [1]])
def test_unusable_id_is_invalid_request_with_null_id(bad_id: Any) -> None:
    error = _parse_error({"jsonrpc": "2.0", "id": bad_id, "method": "ping"})
    assert error.code == INVALID_REQUEST
    assert error.request_id is None
    assert error.reply is True
    assert '"id"' in error.message


@pytest.mark.parametrize("bad_id", [None, 1.0, True, {"a": 1}])
def test_unusable_id_on_response_is_invalid(bad_id: Any) -> None:
    error = _parse_error({"jsonrpc": "2.0", "id": bad_id, "result": {}})
    assert error.code == INVALID_REQUEST
    assert error.request_id is None


def test_missing_method_and_id() -> None:
    error = _parse_error({"jsonrpc": "2.0"})
    assert error.code == INVALID_REQUEST
    assert error.request_id is None


def test_missing_method_with_id_and_no_result_or_error() -> None:
    error = _parse_error({"jsonrpc": "2.0", "id": 12})
    assert error.code == INVALID_REQUEST
    assert error.request_id == 12


def test_result_without_id() -> None:
    error = _parse_error({"jsonrpc": "2.0", "result": {}})
    assert error.code == INVALID_REQUEST
    assert error.request_id is None


def test_response_with_both_result_and_error() -> None:
    error = _parse_error(
        {"jsonrpc": "2.0", "id": "r", "result": {}, "error": {"code": 1, "message": "m"}}
    )
    assert error.code == INVALID_REQUEST
    assert error.request_id == "r"


@pytest.mark.parametrize("bad_error", ["boom", 1, [1], True])
def test_response_error_must_be_an_object(bad_error: Any) -> None:
    error = _parse_error({"jsonrpc": "2.0", "id": 4, "error": bad_error})
    assert error.code == INVALID_REQUEST
    assert error.request_id == 4


def test_response_error_null_is_not_an_error_object() -> None:
    # JSON-RPC 2.0: the "error" member MUST be an object. `"error": null` without a result
    # is a response with neither a result nor an error.
    error = _parse_error({"jsonrpc": "2.0", "id": 4, "error": None})
    assert error.code == INVALID_REQUEST
    assert error.request_id == 4


@pytest.mark.parametrize("method", ["", 5, ["ping"], {"m": 1}, True])
def test_method_must_be_a_non_empty_string(method: Any) -> None:
    error = _parse_error({"jsonrpc": "2.0", "id": 8, "method": method})
    assert error.code == INVALID_REQUEST
    assert error.request_id == 8
    assert error.reply is True


@pytest.mark.parametrize("params", [[1, 2], [], "x", 3, True])
def test_request_params_not_object_is_invalid_params_with_the_id(params: Any) -> None:
    error = _parse_error({"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": params})
    assert error.code == INVALID_PARAMS
    assert error.request_id == 21
    assert error.reply is True


@pytest.mark.parametrize("params", [[1, 2], "x", 3])
def test_malformed_notification_is_never_answered(params: Any) -> None:
    error = _parse_error({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})
    assert error.code == INVALID_PARAMS
    assert error.reply is False
    assert error.request_id is None


def test_readable_id() -> None:
    assert readable_id({"id": 3}) == 3
    assert readable_id({"id": "x"}) == "x"
    assert readable_id({"id": True}) is None
    assert readable_id({"id": 1.0}) is None
    assert readable_id({}) is None
    assert readable_id([{"id": 3}]) is None


# --- outgoing shapes ---------------------------------------------------------------------


def test_result_message_shape() -> None:
    assert result_message(7, {"tools": []}) == {"jsonrpc": "2.0", "id": 7, "result": {"tools": []}}


def test_error_message_shape_without_data() -> None:
    message = error_message("a", method_not_found("nope/x"))
    assert message == {
        "jsonrpc": "2.0",
        "id": "a",
        "error": {"code": -32601, "message": "Method not found: nope/x"},
    }


def test_error_message_with_data_and_null_id() -> None:
    message = error_message(None, JsonRpcError(PARSE_ERROR, "Parse error", {"at": 3}))
    assert message == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error", "data": {"at": 3}},
    }


def test_error_data_falsy_but_not_none_is_kept() -> None:
    assert invalid_params("bad", data=0).to_error() == {"code": -32602, "message": "bad", "data": 0}
    assert invalid_params("bad", data=[]).to_error()["data"] == []


def test_notification_message_shape() -> None:
    message = notification_message("notifications/message", {"level": "info", "data": "x"})
    assert message == {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "data": "x"},
    }
    assert "id" not in message


def test_request_message_shape() -> None:
    assert request_message(1, "ping", {}) == {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert request_message("r", "roots/list", {"a": 1}) == {
        "jsonrpc": "2.0",
        "id": "r",
        "method": "roots/list",
        "params": {"a": 1},
    }


def test_message_errors_are_json_rpc_errors() -> None:
    error = InvalidRequest("bad", 3)
    assert isinstance(error, JsonRpcError)
    assert error.to_error() == {"code": -32600, "message": "bad"}
    assert str(error) == "bad"
