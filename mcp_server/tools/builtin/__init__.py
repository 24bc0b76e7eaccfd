"""Built-in tools, registered on import."""

from mcp_server.tools.builtin import calculator, echo

__all__ = ["calculator", "echo"]
