"""Input-required results (MRTR), the pure parts: reading a retry, rounds, the result shape."""

from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.protocol.input_required import (
    InputRequired,
    InputRound,
    InvalidInputResponse,
    declares,
    elicitation_request,
    input_required_result,
    input_responses,
    request_state,
    roots_request,
    sampling_request,
)

NAME = {"type": "object", "properties": {"name": {"type": "string"}}}
ALL: dict[str, Any] = {"elicitation": {}, "sampling": {}, "roots": {}}
ACCEPTED = {"action": "accept", "content": {"name": "Ada"}}


def _round(responses: Any = None, answers: Any = None) -> InputRound:
    return InputRound(
        capabilities=ALL,
        seal=lambda gathered: f"sealed:{sorted(gathered)}",
        answers=answers,
        responses=responses,
    )


def test_the_result_asks_by_key_and_carries_the_state() -> None:
    requests = {"user_name": elicitation_request("Name?", NAME), "roots": roots_request()}
    result = input_required_result(requests, "opaque")
    assert result == {
        "resultType": "input_required",
        "inputRequests": {
            "user_name": {
                "method": "elicitation/create",
                "params": {"message": "Name?", "requestedSchema": NAME},
            },
            "roots": {"method": "roots/list", "params": {}},
        },
        "requestState": "opaque",
    }


def test_sampling_request_params_as_the_wire_names_them() -> None:
    messages = [{"role": "user", "content": {"type": "text", "text": "Hi"}}]
    request = sampling_request(messages, max_tokens=5, system_prompt="Be brief")
    assert request.params == {"messages": messages, "maxTokens": 5, "systemPrompt": "Be brief"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [({}, {}), ({"inputResponses": {"a": {"roots": []}}}, {"a": {"roots": []}})],
)
def test_input_responses_read(params: dict[str, Any], expected: dict[str, Any]) -> None:
    assert input_responses(params) == expected


@pytest.mark.parametrize(
    "value", [None, 12, "x", [], {"user_name": 12345}, {"user_name": None}, {"k": []}]
)
def test_malformed_input_responses_are_invalid_params(value: Any) -> None:
    with pytest.raises(JsonRpcError) as raised:
        input_responses({"inputResponses": value})
    assert raised.value.code == INVALID_PARAMS


@pytest.mark.parametrize("value", [12, "", [], {"a": 1}])
def test_a_request_state_must_be_a_non_empty_string(value: Any) -> None:
    with pytest.raises(JsonRpcError):
        request_state({"requestState": value})
    assert request_state({}) is None
    assert request_state({"requestState": "s"}) == "s"


def test_a_missing_answer_raises_input_required_for_what_is_missing() -> None:
    round_ = _round(responses={"a": ACCEPTED})
    asked = {"a": elicitation_request("A?", NAME), "b": elicitation_request("B?", NAME)}
    with pytest.raises(InputRequired) as raised:
        round_.take(asked)
    assert list(raised.value.requests) == ["b"]
    # What was answered is kept for the next round's state.
    assert round_.answers == {"a": ACCEPTED}
    assert round_.result(raised.value)["requestState"] == "sealed:['a']"


def test_answers_come_from_earlier_rounds_and_this_retry_extra_keys_ignored() -> None:
    round_ = _round(
        responses={"b": ACCEPTED, "unasked": {"action": "accept"}}, answers={"a": {"x": 1}}
    )
    asked = {"a": elicitation_request("A?", NAME), "b": elicitation_request("B?", NAME)}
    assert round_.take(asked) == {"a": {"x": 1}, "b": ACCEPTED}
    assert "unasked" not in round_.answers


def test_known_answers_without_asking_and_answers_all_says_whether_none_is_missing() -> None:
    # What decides whether a 2026-07-28 call of a tool with `asks_first` is made a task yet.
    round_ = _round(responses={"b": ACCEPTED}, answers={"a": {"x": 1}})
    asked = {"a": elicitation_request("A?", NAME), "b": elicitation_request("B?", NAME)}
    assert round_.known({**asked, "c": roots_request()}) == {"a": {"x": 1}, "b": ACCEPTED}
    assert round_.answers_all(asked)
    assert not round_.answers_all({**asked, "c": roots_request()})
    assert _round().answers_all({})


@pytest.mark.parametrize(
    ("request_", "response"),
    [
        (elicitation_request("A?", NAME), {"action": "maybe"}),
        (elicitation_request("A?", NAME), {"action": "accept", "content": "Ada"}),
        (sampling_request([], max_tokens=1), {"content": {"type": "text", "text": "x"}}),
        (roots_request(), {"roots": "file:///"}),
    ],
)
def test_a_response_unlike_its_request_is_invalid_params(request_: Any, response: Any) -> None:
    with pytest.raises(InvalidInputResponse) as raised:
        _round(responses={"k": response}).take({"k": request_})
    assert raised.value.code == INVALID_PARAMS


def test_declared_capabilities_and_modes() -> None:
    assert declares({"elicitation": {}}, "elicitation", "form")
    assert not declares({"elicitation": {}}, "elicitation", "url")
    assert declares({"elicitation": {"url": {}}}, "elicitation", "url")
    assert not declares({"sampling": {}}, "elicitation")
    assert not declares({"roots": True}, "roots")
