"""A tool module whose tool takes the name another app's tool has."""

from mcp_server.tools import tool


@tool()
async def shout(text: str) -> str:
    """Shout, from a second app."""
    return text.upper() + "!"
