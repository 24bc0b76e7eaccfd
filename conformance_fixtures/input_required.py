"""The tools of the conformance suite's input-required-result-* scenarios (SEP-2322, MRTR;
src/scenarios/server/input-required-result.ts of @modelcontextprotocol/conformance
0.2.0-alpha.12), by the names, keys and questions those scenarios check.

Each asks through the context as any tool does, so each also works in the handshake era
(there as requests to the client). Opt-in like every fixture: only the conformance tenant
has them.
"""

from typing import Any

from mcp_server.tools import (
    InputRequest,
    ToolContext,
    elicitation_request,
    roots_request,
    sampling_request,
    tool,
)

_NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
_OK = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
_COLOR = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}


def _content(elicited: dict[str, Any]) -> dict[str, Any]:
    content = elicited.get("content")
    return content if isinstance(content, dict) else {}


def _sampled_text(result: dict[str, Any]) -> str:
    content = result.get("content")
    text = content.get("text") if isinstance(content, dict) else None
    return text if isinstance(text, str) else ""


def _roots(result: dict[str, Any]) -> str:
    uris = [root.get("uri") for root in result.get("roots", ()) if isinstance(root, dict)]
    return ", ".join(str(uri) for uri in uris) or "no roots"


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": {"type": "text", "text": text}}]


@tool(opt_in=True)
async def test_input_required_result_elicitation(ctx: ToolContext) -> str:
    """Asks for the user's name (elicitation), then greets them."""
    answer = await ctx.elicit("What is your name?", _NAME, key="user_name")
    return f"Hello, {_content(answer).get('name', 'stranger')}!"


@tool(opt_in=True)
async def test_input_required_result_sampling(ctx: ToolContext) -> str:
    """Asks the client's model a question (sampling), then returns its answer."""
    messages = _user("What is the capital of France?")
    answer = await ctx.create_message(messages, max_tokens=100, key="capital_question")
    return f"The model said: {_sampled_text(answer)}"


@tool(opt_in=True)
async def test_input_required_result_list_roots(ctx: ToolContext) -> str:
    """Asks for the client's roots, then names them."""
    return f"Client roots: {_roots(await ctx.list_roots(key='client_roots'))}"


@tool(opt_in=True)
async def test_input_required_result_request_state(ctx: ToolContext) -> str:
    """Asks for a confirmation; the retry is accepted only with its verified request state."""
    answer = await ctx.elicit("Please confirm", _OK, key="confirm")
    return f"state-ok: confirmed={_content(answer).get('ok')}"


@tool(opt_in=True)
async def test_input_required_result_multiple_inputs(ctx: ToolContext) -> str:
    """Asks for a name, a generated greeting and the roots in one round."""
    answers = await ctx.ask(
        {
            "user_name": elicitation_request("What is your name?", _NAME),
            "greeting": sampling_request(_user("Generate a greeting"), max_tokens=50),
            "client_roots": roots_request(),
        }
    )
    name = _content(answers["user_name"]).get("name")
    greeting = _sampled_text(answers["greeting"])
    return f"{greeting} {name} (roots: {_roots(answers['client_roots'])})"


@tool(opt_in=True)
async def test_input_required_result_multi_round(ctx: ToolContext) -> str:
    """Asks for a name, then (a round later) for a favourite colour."""
    name = _content(await ctx.elicit("Step 1: What is your name?", _NAME, key="step1"))
    color = _content(await ctx.elicit("Step 2: What is your favorite color?", _COLOR, key="step2"))
    return f"{name.get('name')} likes {color.get('color')}"


@tool(opt_in=True)
async def test_input_required_result_tampered_state(ctx: ToolContext) -> str:
    """Asks for a confirmation under a signed request state (a tampered one is refused)."""
    answer = await ctx.elicit("Please confirm", _OK, key="confirm")
    return f"confirmed={_content(answer).get('ok')}"


@tool(opt_in=True)
async def test_input_required_result_capabilities(ctx: ToolContext) -> str:
    """Asks only what the client declared it can answer (elicitation and/or sampling)."""
    wanted: dict[str, InputRequest] = {}
    if ctx.supports("elicitation", "form"):
        wanted["user_name"] = elicitation_request("What is your name?", _NAME)
    if ctx.supports("sampling"):
        question = _user("What is the capital of France?")
        wanted["capital_question"] = sampling_request(question, max_tokens=100)
    if not wanted:
        return "The client declared neither elicitation nor sampling: nothing to ask."
    answers = await ctx.ask(wanted)
    return f"Answered: {', '.join(sorted(answers))}"


_USER_NAME = elicitation_request("What is your name?", _NAME)


@tool(opt_in=True, task_support="required", asks_first={"user_name": _USER_NAME})
async def test_tool_with_task(ctx: ToolContext) -> str:
    """Asks for the user's name in input rounds, then (the name given) runs as a task of the
    tasks extension that greets them (the tasks-mrtr-composition scenario)."""
    answers = await ctx.ask({"user_name": _USER_NAME})
    return f"Hello, {_content(answers['user_name']).get('name', 'stranger')}! (from a task)"
