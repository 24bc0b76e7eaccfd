"""The sealed request state of input-required results: bound, signed, expiring."""

import dataclasses
import time
import uuid
from typing import Any

import pytest
from django.core import signing

from mcp_server.cluster import messages
from mcp_server.cluster.worker import request_from_start
from mcp_server.input_state import StateBinding, input_round, seal, unseal
from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.protocol.input_required import InputRequired, elicitation_request
from mcp_server.runtime.runner import CallRequest
from mcp_server.tools.registry import registry
from mcp_server.tools.testing import sample_principal
from tests.ws.session_support import PRINCIPAL

ANSWERS = {"user_name": {"action": "accept", "content": {"name": "Ada"}}}


@pytest.fixture
def binding() -> StateBinding:
    return StateBinding(1, 2, "tool", "greet", {"a": 1})


def _refused(state: str, binding: StateBinding) -> str:
    with pytest.raises(JsonRpcError) as raised:
        unseal(state, binding)
    assert raised.value.code == INVALID_PARAMS
    return raised.value.message


def test_a_sealed_state_opens_with_its_own_binding(binding: StateBinding) -> None:
    assert unseal(seal(binding, ANSWERS), binding) == ANSWERS


@pytest.mark.parametrize(
    "other",
    [
        StateBinding(9, 2, "tool", "greet", {"a": 1}),  # another tenant
        StateBinding(1, 9, "tool", "greet", {"a": 1}),  # another user
        StateBinding(1, 2, "prompt", "greet", {"a": 1}),  # a prompt of that name
        StateBinding(1, 2, "tool", "other", {"a": 1}),  # another tool
        StateBinding(1, 2, "tool", "greet", {"a": 2}),  # other arguments
        StateBinding(1, 2, "tool", "greet", {}),  # no arguments
    ],
)
def test_someone_elses_state_is_refused(binding: StateBinding, other: StateBinding) -> None:
    assert _refused(seal(binding, ANSWERS), other) == "requestState failed verification"


def test_a_tampered_state_is_refused(binding: StateBinding) -> None:
    state = seal(binding, ANSWERS)
    assert _refused(state + "-TAMPERED", binding) == "requestState failed verification"
    assert _refused(state[:-2], binding) == "requestState failed verification"
    # Signed with another salt (another use of the same key): refused too.
    forged = signing.dumps({"b": binding.as_list(), "a": {}}, salt="elsewhere", compress=True)
    assert _refused(forged, binding) == "requestState failed verification"


def test_an_expired_state_is_refused(binding: StateBinding, settings: Any) -> None:
    settings.MCP_INPUT_STATE_TTL = 60
    state = seal(binding, ANSWERS)
    with pytest.MonkeyPatch.context() as patch:
        later = time.time() + 61
        patch.setattr(time, "time", lambda: later)
        assert "expired" in _refused(state, binding)
        # Someone else's expired state is refused as any foreign one: nothing learnt.
        other = StateBinding(1, 9, "tool", "greet", {"a": 1})
        assert _refused(state, other) == "requestState failed verification"


def test_the_binding_digests_the_arguments_in_any_key_order() -> None:
    principal = sample_principal()
    one = StateBinding.of(principal, "tool", "t", {"a": 1, "b": [1, 2]}).as_list()
    assert one == StateBinding.of(principal, "tool", "t", {"b": [1, 2], "a": 1}).as_list()
    assert one != StateBinding.of(principal, "tool", "t", {"a": 2, "b": [1, 2]}).as_list()


def test_a_round_resumes_from_its_state(binding: StateBinding) -> None:
    question = {"user_name": elicitation_request("Name?", {}), "b": elicitation_request("?", {})}
    first = input_round({}, binding=binding, capabilities={"elicitation": {}})
    with pytest.raises(InputRequired) as asked:
        first.take(question)
    state = first.result(asked.value)["requestState"]
    retry = {"requestState": state, "inputResponses": ANSWERS}
    second = input_round(retry, binding=binding, capabilities={"elicitation": {}})
    with pytest.raises(InputRequired) as again:
        second.take(question)
    assert list(again.value.requests) == ["b"]
    third = input_round(
        {
            "requestState": second.result(again.value)["requestState"],
            "inputResponses": {"b": {"action": "decline"}},
        },
        binding=binding,
        capabilities={"elicitation": {}},
    )
    assert third.take(question) == {**ANSWERS, "b": {"action": "decline"}}


async def test_a_round_travels_to_a_worker_and_is_resumed_there() -> None:
    """A call placed on workers takes its verified round along in `operation.start`; the
    worker's runner answers from it and seals the next state for the same binding."""
    echo = registry.get("echo")
    assert echo is not None
    binding = StateBinding.of(PRINCIPAL, "tool", "echo", {"text": "x"})
    question = {"user_name": elicitation_request("Name?", {}), "b": elicitation_request("?", {})}
    retry = {"requestState": seal(binding, {}), "inputResponses": ANSWERS}
    request = CallRequest(
        principal=PRINCIPAL,
        tool=echo,
        arguments={"text": "x"},
        connection_id="conn-1",
        request_id=7,
        progress_token=None,
        operation_id=uuid.uuid4(),
        inputs=input_round(retry, binding=binding, capabilities={"elicitation": {}}),
    )
    start = messages.OperationStart.of(request, "listener")
    resumed = request_from_start(messages.OperationStart.decode(start.encode()))
    assert resumed.inputs is not None
    with pytest.raises(InputRequired) as asked:
        resumed.inputs.take(question)
    state = resumed.inputs.result(asked.value)["requestState"]
    assert unseal(state, binding) == ANSWERS
    # Without a round (the handshake era) nothing is carried.
    plain = messages.OperationStart.of(dataclasses.replace(request, inputs=None), None)
    assert request_from_start(messages.OperationStart.decode(plain.encode())).inputs is None
