"""`echo`: returns its text, for checking a connection end to end."""

from typing import Annotated

from pydantic import Field

from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import tool


@tool(title="Echo", annotations={"readOnlyHint": True, "openWorldHint": False}, duration="short")
async def echo(
    text: Annotated[str, Field(description="The text to send back.")], ctx: ToolContext
) -> str:
    """Return the given text unchanged."""
    await ctx.log("debug", f"echoing {len(text)} characters")
    return text
