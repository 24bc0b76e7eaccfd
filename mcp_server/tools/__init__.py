"""Tools: the registry, the decorator tool authors use, and the built-in tools."""

from mcp_server.protocol.input_required import (
    InputRequest,
    elicitation_request,
    roots_request,
    sampling_request,
)
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
    "InputRequest",
    "Summarized",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "elicitation_request",
    "registry",
    "roots_request",
    "sampling_request",
    "tool",
]
