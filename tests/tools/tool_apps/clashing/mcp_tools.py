"""A tool module that declares a tool under a built-in's name."""

from mcp_server.tools import tool


@tool()
async def echo(text: str) -> str:
    """Echo, again."""
    return text
