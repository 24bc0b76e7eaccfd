"""Invoke one tool with validated arguments and turn whatever happens into a CallToolResult."""

import asyncio
import dataclasses
import functools
import logging
import uuid
from typing import Any

from pydantic import BaseModel

from mcp_server.client_requests import ClientRequestError
from mcp_server.protocol.errors import JsonRpcError
from mcp_server.protocol.tool_results import (
    error_result,
    structured_result,
    text_content,
    value_result,
)
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.fanout import FanOutRefused
from mcp_server.tools.registry import Contents, Summarized, Tool, ToolError

logger = logging.getLogger(__name__)


def _structured(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _failure(tool: Tool, summary: str) -> dict[str, Any]:
    reference = uuid.uuid4().hex[:12]
    logger.exception("tool %s %s (reference %s)", tool.name, summary, reference)
    return error_result(
        f"Tool {tool.name!r} {summary} (reference {reference}); the details are in the server log."
    )


def result_for(tool: Tool, value: Any) -> dict[str, Any]:
    """The CallToolResult for a tool's return value, structured when it has an output schema."""
    if isinstance(value, Contents) and tool.output_schema is None:
        return {"content": list(value.items)}
    summary = None
    if isinstance(value, Summarized):
        value, summary = value.value, value.summary
    if tool.output_schema is None:
        return value_result(value)
    structured = _structured(value)
    problems = tool.output_errors(structured)
    if problems:
        logger.error(
            "tool %s returned a result outside its output schema: %s",
            tool.name,
            "; ".join(problems),
        )
        return error_result(f"Tool {tool.name!r} produced a result that breaks its output schema.")
    result = structured_result(structured)
    if summary:
        result["content"].insert(0, text_content(summary))
    return result


async def call_tool(
    tool: Tool, arguments: dict[str, Any], context: ToolContext | None
) -> dict[str, Any]:
    """Validate, run and wrap one call; tool failures come back as `isError` results (a
    JsonRpcError the tool raises propagates: the request fails with it). `context` may be
    None for a tool that takes none."""
    problems = tool.argument_errors(arguments)
    if problems:
        return error_result(f"Invalid arguments for tool {tool.name!r}: " + "; ".join(problems))
    kwargs = dict(arguments)
    if tool.context_param is not None:
        assert context is not None, f"tool {tool.name!r} takes a context"
        kwargs[tool.context_param] = context
    try:
        if tool.is_async:
            value = await tool.fn(**kwargs)
        else:
            value = await asyncio.to_thread(functools.partial(tool.fn, **kwargs))
    except (ToolError, ClientRequestError, FanOutRefused) as exc:
        return error_result(str(exc))
    except JsonRpcError:
        # A protocol error the tool means as one (or an input response that is not what its
        # request asks for): the request fails with it (a task of the tasks extension turns
        # `failed`), rather than answering a tool error. InputRequired is no Exception.
        raise
    except Exception:
        return _failure(tool, "failed unexpectedly")
    try:
        return result_for(tool, value)
    except Exception:
        return _failure(tool, "returned a result that cannot be sent")
