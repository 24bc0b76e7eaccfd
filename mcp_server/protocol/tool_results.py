"""Shapes of `tools/call` results."""

from typing import Any

from mcp_server.protocol.text_escapes import json_text


def text_content(text: str) -> dict[str, Any]:
    """A text content item."""
    return {"type": "text", "text": text}


def error_result(text: str) -> dict[str, Any]:
    """A CallToolResult reporting a failure the model should see (`isError: true`)."""
    return {"content": [text_content(text)], "isError": True}


def structured_result(value: Any) -> dict[str, Any]:
    """A CallToolResult carrying `value` as structuredContent and as the same JSON in text."""
    return {"content": [text_content(json_text(value))], "structuredContent": value}


def value_result(value: Any) -> dict[str, Any]:
    """A CallToolResult for a plain return value: text as is, anything else as JSON text."""
    if isinstance(value, str):
        return {"content": [text_content(value)]}
    return {"content": [text_content(json_text(value))]}
