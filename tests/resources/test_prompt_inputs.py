"""A prompt that asks for input (`asks_input`): an input-required result on a 2026-07-28
`prompts/get`, its messages once the retry brings the answer; no question in the handshake
era; a state made for other arguments refused."""

from typing import Any

import pytest

from accounts.principal import Principal
from mcp_server.identity import ServerIdentity
from mcp_server.prompt_requests import PromptRequests
from mcp_server.prompts.registry import PromptRegistry
from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.protocol.input_required import InputRound, elicitation_request
from mcp_server.protocol.messages import Request
from mcp_server.protocol.prompts import PromptArgument, user_text
from mcp_server.runtime.limits import SlotKey
from mcp_server.session_caller import SessionCaller
from mcp_server.tools.testing import sample_principal

CAPABILITIES: dict[str, Any] = {"elicitation": {}}
TOPIC = {"type": "object", "properties": {"topic": {"type": "string"}}}


def _render(
    principal: Principal, arguments: dict[str, str], inputs: InputRound | None
) -> list[dict[str, Any]]:
    if inputs is None:
        return [user_text(f"Write about anything, in {arguments['tone']}.")]
    answer = inputs.take({"topic": elicitation_request("Which topic?", TOPIC)})["topic"]
    return [user_text(f"Write about {answer['content']['topic']}, in {arguments['tone']}.")]


async def _settled() -> None:
    return None


@pytest.fixture
def prompts() -> PromptRequests:
    registry = PromptRegistry()
    registry.add(
        "essay",
        description="An essay on a topic the user picks",
        render=_render,
        arguments=(PromptArgument("tone", "How it reads", required=True),),
        asks_input=True,
    )
    principal = sample_principal()
    caller = SessionCaller(
        principal=lambda: principal, slot_key=lambda: SlotKey(1, 1, "c"), settle=_settled
    )
    identity = ServerIdentity(name="test-server", title="Test", version="0.0.1")
    return PromptRequests(caller=caller, identity=identity, registry=registry)


def _get(params: dict[str, Any]) -> Request:
    return Request(1, "prompts/get", {"name": "essay", **params})


async def test_it_asks_then_renders_with_the_answer(prompts: PromptRequests) -> None:
    asked = await prompts.get(_get({"arguments": {"tone": "verse"}}), CAPABILITIES)
    assert asked["resultType"] == "input_required"
    assert asked["inputRequests"]["topic"]["params"]["message"] == "Which topic?"
    retry = {
        "arguments": {"tone": "verse"},
        "inputResponses": {"topic": {"action": "accept", "content": {"topic": "tides"}}},
        "requestState": asked["requestState"],
    }
    done = await prompts.get(_get(retry), CAPABILITIES)
    assert done["messages"][0]["content"]["text"] == "Write about tides, in verse."
    assert "resultType" not in done  # the session finishes it as "complete"

    retry["arguments"] = {"tone": "prose"}  # the state was made for other arguments
    with pytest.raises(JsonRpcError) as refused:
        await prompts.get(_get(retry), CAPABILITIES)
    assert refused.value.code == INVALID_PARAMS


async def test_in_the_handshake_era_it_does_not_ask(prompts: PromptRequests) -> None:
    got = await prompts.get(_get({"arguments": {"tone": "verse"}}))
    assert got["messages"][0]["content"]["text"] == "Write about anything, in verse."
