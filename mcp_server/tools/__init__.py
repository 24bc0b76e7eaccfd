"""Tools: the registry, the decorator tool authors use, and the built-in tools."""

from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import (
    Contents,
    Summarized,
    Tool,
    ToolError,
    ToolRegistry,
    registry,
    tool,
)

__all__ = [
    "Contents",
    "Summarized",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "registry",
    "tool",
]
