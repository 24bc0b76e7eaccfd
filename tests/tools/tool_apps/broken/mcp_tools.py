"""A tool module whose import fails."""

from mcp_server.tools.missing_helpers import shout_loudly

from mcp_server.tools import tool


@tool()
async def shout(text: str) -> str:
    """Shout."""
    return str(shout_loudly(text))
