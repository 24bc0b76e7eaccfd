"""Tools: the registry, the decorator tool authors use, and the built-in tools."""

from mcp_server.tools.registry import Tool, ToolError, ToolRegistry, registry, tool

__all__ = ["Tool", "ToolError", "ToolRegistry", "registry", "tool"]
