"""A prompt and a resource that ask for input (`asks_input`): an input-required result on a
2026-07-28 `prompts/get` / `resources/read`, their result once the retry brings the answer;
no question in the handshake era; a state made for another request refused."""

from typing import Any

import pytest

from accounts.principal import Principal
from mcp_server.identity import ServerIdentity
from mcp_server.prompt_requests import PromptRequests
from mcp_server.prompts.registry import PromptRegistry
from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.protocol.input_required import InputRound, elicitation_request
from mcp_server.protocol.messages import Request
from mcp_server.protocol.modern import RequestMeta
from mcp_server.protocol.prompts import PromptArgument, user_text
from mcp_server.protocol.resources import text_contents
from mcp_server.resource_requests import ResourceRequests
from mcp_server.resources.registry import ResourceRegistry
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


def _caller() -> SessionCaller:
    principal = sample_principal()
    return SessionCaller(
        principal=lambda: principal, slot_key=lambda: SlotKey(1, 1, "c"), settle=_settled
    )


IDENTITY = ServerIdentity(name="test-server", title="Test", version="0.0.1")


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
    return PromptRequests(caller=_caller(), identity=IDENTITY, registry=registry)


MODERN = RequestMeta("2026-07-28", CAPABILITIES, None, None)


def _get(params: dict[str, Any], meta: RequestMeta | None = MODERN) -> Request:
    return Request(1, "prompts/get", {"name": "essay", **params}, meta)


async def test_it_asks_then_renders_with_the_answer(prompts: PromptRequests) -> None:
    asked = await prompts.get(_get({"arguments": {"tone": "verse"}}))
    assert asked["resultType"] == "input_required"
    assert asked["inputRequests"]["topic"]["params"]["message"] == "Which topic?"
    retry = {
        "arguments": {"tone": "verse"},
        "inputResponses": {"topic": {"action": "accept", "content": {"topic": "tides"}}},
        "requestState": asked["requestState"],
    }
    done = await prompts.get(_get(retry))
    assert done["messages"][0]["content"]["text"] == "Write about tides, in verse."
    assert "resultType" not in done  # the session finishes it as "complete"

    retry["arguments"] = {"tone": "prose"}  # the state was made for other arguments
    with pytest.raises(JsonRpcError) as refused:
        await prompts.get(_get(retry))
    assert refused.value.code == INVALID_PARAMS


async def test_in_the_handshake_era_it_does_not_ask(prompts: PromptRequests) -> None:
    got = await prompts.get(_get({"arguments": {"tone": "verse"}}, None))
    assert got["messages"][0]["content"]["text"] == "Write about anything, in verse."


def _note(
    principal: Principal, uri: str, name: str, inputs: InputRound | None
) -> list[dict[str, Any]]:
    if inputs is None:
        return [text_contents(uri, f"note {name}")]
    answer = inputs.take({"signer": elicitation_request("Signed by?", TOPIC)})["signer"]
    return [text_contents(uri, f"note {name}, signed {answer['content']['topic']}")]


def _read(uri: str, meta: RequestMeta | None, **params: Any) -> Request:
    return Request(1, "resources/read", {"uri": uri, **params}, meta)


async def test_a_resource_asks_then_reads_with_the_answer() -> None:
    registry = ResourceRegistry()
    registry.add_template("notes://{name}", name="note", read=_note, asks_input=True)
    requests = ResourceRequests(caller=_caller(), identity=IDENTITY, registry=registry)
    meta = MODERN
    asked = await requests.read(_read("notes://a", meta))
    assert list(asked["inputRequests"]) == ["signer"]
    answer = {"signer": {"action": "accept", "content": {"topic": "Ada"}}}
    retry = {"inputResponses": answer, "requestState": asked["requestState"]}
    read = await requests.read(_read("notes://a", meta, **retry))
    assert read["contents"][0]["text"] == "note a, signed Ada"
    with pytest.raises(JsonRpcError) as refused:  # the state of another URI
        await requests.read(_read("notes://b", meta, **retry))
    assert refused.value.code == INVALID_PARAMS
    # The handshake era (and a subscription's reads): no question.
    assert (await requests.contents("notes://a"))[0]["text"] == "note a"
