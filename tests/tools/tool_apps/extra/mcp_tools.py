"""A tool module that adds one tool."""

from mcp_server.tools import tool


@tool()
async def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()
