"""The tools the conformance suite (@modelcontextprotocol/conformance) calls, by the names and
with the behaviour its server scenarios check (src/scenarios/server/tools.ts and the
elicitation scenarios of 0.1.16; the 2026-07-28 probes of server-stateless and the tasks-*
scenarios of 0.2.0-alpha.12).

Every one is opt-in: only a tenant naming it in its enabled tools (the one `manage.py
conformance_tenant` makes) lists or calls it; to every other tenant it does not exist.
"""

import asyncio
from typing import Annotated, Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from pydantic import Field

from accounts.models import Tenant
from accounts.services import tenant_update
from mcp_server.protocol.errors import INTERNAL_ERROR, JsonRpcError
from mcp_server.protocol.tool_results import (
    audio_content,
    embedded_text_resource,
    image_content,
    text_content,
)
from mcp_server.tools import Contents, ToolContext, ToolError, tool

# A 1x1 PNG and a tiny WAV file, base64.
IMAGE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
AUDIO_WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
# The scenarios expect log and progress notices "about 50 ms apart".
NOTICE_GAP = 0.05


@tool(opt_in=True)
async def test_simple_text() -> str:
    """Tests simple text content response."""
    return "This is a simple text response for testing."


@tool(opt_in=True)
async def test_image_content() -> Contents:
    """Tests image content response."""
    return Contents((image_content(IMAGE_PNG, "image/png"),))


@tool(opt_in=True)
async def test_audio_content() -> Contents:
    """Tests audio content response."""
    return Contents((audio_content(AUDIO_WAV, "audio/wav"),))


@tool(opt_in=True)
async def test_embedded_resource() -> Contents:
    """Tests embedded resource content response."""
    text = "This is an embedded resource content."
    return Contents((embedded_text_resource("test://embedded-resource", "text/plain", text),))


@tool(opt_in=True)
async def test_multiple_content_types() -> Contents:
    """Tests response with multiple content types (text, image, resource)."""
    data = orjson.dumps({"test": "data", "value": 123}).decode()
    return Contents(
        (
            text_content("Multiple content types test:"),
            image_content(IMAGE_PNG, "image/png"),
            embedded_text_resource("test://mixed-content-resource", "application/json", data),
        )
    )


@tool(opt_in=True)
async def test_tool_with_logging(ctx: ToolContext) -> str:
    """Tests tool that emits log messages during execution."""
    await ctx.log("info", "Tool execution started")
    await asyncio.sleep(NOTICE_GAP)
    await ctx.log("info", "Tool processing data")
    await asyncio.sleep(NOTICE_GAP)
    await ctx.log("info", "Tool execution completed")
    return "Tool with logging executed successfully"


@tool(opt_in=True)
async def test_tool_with_progress(ctx: ToolContext) -> str:
    """Tests tool that reports progress notifications (0, 50 and 100 of 100)."""
    # Progress is coalesced to MCP_PROGRESS_MAX_RATE: reports spaced wider than its interval
    # all reach the client, as the scenario expects three of them.
    gap = max(NOTICE_GAP, 2 / settings.MCP_PROGRESS_MAX_RATE)
    for done in (0, 50, 100):
        if done:
            await asyncio.sleep(gap)
        ctx.progress(done, 100, f"Completed step {done} of 100")
    return "Tool with progress executed successfully"


@tool(opt_in=True, client_capabilities={"sampling": {}})
async def test_missing_capability() -> str:
    """Test tool requiring sampling (a 2026-07-28 request without it gets -32021)."""
    return "Success"


@tool(opt_in=True, client_capabilities={"elicitation": {}})
async def test_streaming_elicitation(ctx: ToolContext) -> str:
    """Diagnostic tool validating response progress streams: progress, then the result, and
    never a request of the server's own on the stream."""
    ctx.progress(50, 100)
    return "Streaming complete"


@tool(opt_in=True)
async def test_logging_tool(ctx: ToolContext) -> str:
    """Diagnostic logging validator tool: logs only for a request that asked for them."""
    await ctx.log("info", "Diagnostic trace logging activated")
    return "Logging evaluated"


@tool(opt_in=True)
async def test_error_handling() -> str:
    """Tests error response handling."""
    raise ToolError("This tool intentionally returns an error for testing")


@tool(opt_in=True)
async def test_sampling(ctx: ToolContext, prompt: str) -> str:
    """Tests server-initiated sampling (LLM completion request)."""
    messages = [{"role": "user", "content": {"type": "text", "text": prompt}}]
    result = await ctx.create_message(messages, max_tokens=100)
    content = result.get("content")
    text = content.get("text") if isinstance(content, dict) else None
    return f"LLM response: {text if text is not None else 'No response'}"


def _elicited(prefix: str, result: dict[str, Any]) -> str:
    content = orjson.dumps(result.get("content") or {}).decode()
    return f"{prefix}: action={result.get('action')}, content={content}"


@tool(opt_in=True)
async def test_elicitation(ctx: ToolContext, message: str) -> str:
    """Tests server-initiated elicitation (user input request)."""
    schema = {
        "type": "object",
        "properties": {"response": {"type": "string", "description": "User's response"}},
        "required": ["response"],
    }
    return _elicited("User response", await ctx.elicit(message, schema))


@tool(opt_in=True)
async def test_elicitation_sep1034_defaults(ctx: ToolContext) -> str:
    """Tests elicitation with default values per SEP-1034."""
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
        "required": [],
    }
    message = "Please review and update the form fields with defaults"
    return _elicited("Elicitation completed", await ctx.elicit(message, schema))


def _titled(prefix: str) -> list[dict[str, str]]:
    names = ("First", "Second", "Third")
    return [{"const": f"value{n}", "title": f"{names[n - 1]} {prefix}"} for n in (1, 2, 3)]


@tool(opt_in=True)
async def test_elicitation_sep1330_enums(ctx: ToolContext) -> str:
    """Tests elicitation with enum schema improvements per SEP-1330."""
    options = ["option1", "option2", "option3"]
    schema = {
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": options,
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": _titled("Option"),
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "string", "enum": options},
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {"anyOf": _titled("Choice")},
            },
        },
        "required": [],
    }
    message = "Please select options from the enum fields"
    return _elicited("Elicitation completed", await ctx.elicit(message, schema))


# The suite's canonical schema (json-schema-2020-12.ts): SEP-1613's $schema, $defs and
# additionalProperties, and SEP-2106's $anchor, allOf/anyOf and if/then/else.
JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@tool(opt_in=True, input_schema=JSON_SCHEMA_2020_12)
async def json_schema_2020_12_tool(
    name: str | None = None,
    address: dict[str, Any] | None = None,
    contactMethod: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> str:
    """Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613, SEP-2106)."""
    given = {
        "name": name,
        "address": address,
        "contactMethod": contactMethod,
        "phone": phone,
        "email": email,
    }
    arguments = {key: value for key, value in given.items() if value}
    return f"JSON Schema 2020-12 tool called with: {orjson.dumps(arguments).decode()}"


@tool(opt_in=True)
async def test_reconnection() -> str:
    """Tests SSE stream disconnection and client reconnection (SEP-1699)."""
    # The server may close the stream mid-call to make the client resume it (SEP-1699); this
    # one keeps it open until the result, which server-sse-polling accepts.
    await asyncio.sleep(2 * NOTICE_GAP)
    return (
        "Reconnection test completed successfully. If you received this, the client "
        "properly reconnected after stream closure."
    )


# --- 2026-07-28 listen streams (server-stateless: list changes on subscriptions/listen) ------
# A tenant's lists change when its tool set does (accounts/tool_sets.py), so the triggers
# change the calling tenant's tool set, as an operator would: the change reaches every listen
# of the tenant, on every web process, through the tenant update's announcement.
DYNAMIC_TOOL = "test_dynamic_tool"
# The tool prompt `test_dynamic_prompt` needs (resources_and_prompts.py).
DYNAMIC_PROMPT_TOOL = "test_dynamic_prompt_tool"


@tool(opt_in=True)
async def test_dynamic_tool() -> str:
    """A tool test_trigger_tool_change takes away and gives back."""
    return "This tool comes and goes."


@tool(opt_in=True)
async def test_dynamic_prompt_tool() -> str:
    """The tool prompt test_dynamic_prompt needs; test_trigger_prompt_change toggles it."""
    return "This tool and its prompt come and go."


def _toggle_tool(tenant_id: int, name: str) -> None:
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
        enabled = list(tenant.enabled_tools or [])
        tenant.enabled_tools = (
            [n for n in enabled if n != name]
            if name in enabled
            else [
                *enabled,
                name,
            ]
        )
        tenant_update(tenant=tenant, changed=["enabled_tools"])


async def _toggle(ctx: ToolContext, name: str) -> str:
    principal = ctx.principal
    if principal.enabled_tools is None:
        raise ToolError("This tenant's tool set is not a list of tools: nothing to toggle")
    await sync_to_async(_toggle_tool)(principal.tenant_id, name)
    return "Mutation triggered"


@tool(opt_in=True)
async def test_trigger_tool_change(ctx: ToolContext) -> str:
    """Changes the caller's tool list (test_dynamic_tool goes, or comes back)."""
    return await _toggle(ctx, DYNAMIC_TOOL)


@tool(opt_in=True)
async def test_trigger_prompt_change(ctx: ToolContext) -> str:
    """Changes the caller's prompt list (test_dynamic_prompt goes, or comes back, with the
    tool it needs)."""
    return await _toggle(ctx, DYNAMIC_PROMPT_TOOL)


# --- the tasks extension (src/scenarios/server/tasks/ of 0.2.0-alpha.12) --------------------
# A 2026-07-28 call of a tool with task support that takes long becomes a task when its
# request declares io.modelcontextprotocol/tasks (protocol/tasks.py, `becomes_task`).
_CONFIRM = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean", "description": "Delete it?"}},
    "required": ["confirm"],
}


@tool(opt_in=True, duration="short")
async def greet(name: str) -> str:
    """Greets someone at once (never a task)."""
    return f"Hello, {name}!"


@tool(opt_in=True, task_support="optional")
async def slow_compute(
    seconds: Annotated[float, Field(ge=0, le=300, description="How long to compute.")] = 1,
    label: str = "",
) -> str:
    """Computes for `seconds` (a task for a client of the tasks extension); a cancel stops it."""
    await asyncio.sleep(seconds)
    return f"Computed {label or 'result'} in {seconds:g} s"


@tool(opt_in=True, task_support="required")
async def failing_job() -> str:
    """Runs only as a task, and after about a second reports a tool error."""
    await asyncio.sleep(1)
    raise ToolError("failing_job failed, as it always does")


@tool(opt_in=True, task_support="optional")
async def protocol_error_job() -> str:
    """Fails with a JSON-RPC error (a protocol error, not a tool error)."""
    raise JsonRpcError(INTERNAL_ERROR, "protocol_error_job failed with a protocol error")


@tool(opt_in=True, task_support="optional")
async def confirm_delete(ctx: ToolContext, filename: str) -> str:
    """Asks for confirmation, then pretends to delete `filename` (nothing is deleted); as a
    task of the tasks extension, the question is its inputRequests, answered by tasks/update."""
    answer = await ctx.elicit(f"Delete {filename}?", _CONFIRM)
    confirmed = answer.get("action") == "accept" and (answer.get("content") or {}).get("confirm")
    return f"Deleted {filename}" if confirmed else f"Kept {filename}"


@tool(opt_in=True, task_support="optional")
async def multi_input(ctx: ToolContext) -> str:
    """Asks two questions at once (as a task: two inputRequests, answerable one by one)."""
    first, second = await asyncio.gather(
        ctx.elicit("First name?", _CONFIRM), ctx.elicit("Second name?", _CONFIRM)
    )
    return f"Answered: {first.get('action')}, {second.get('action')}"


# The input-required-result-* fixtures (2026-07-28) live beside these, registered with them.
from conformance_fixtures import input_required  # noqa: E402, F401
