"""The tools one tenant may list and call, shared by all connections of that tenant setting."""

from functools import lru_cache

from mcp_server.tools.registry import Tool, ToolRegistry, registry


class ToolCatalog:
    """An immutable, ordered view of the tools a tenant may use."""

    __slots__ = ("_by_name", "tools")

    def __init__(self, tools: tuple[Tool, ...]) -> None:
        self.tools = tools
        self._by_name = {tool.name: tool for tool in tools}

    def get(self, name: str) -> Tool | None:
        """The tool called `name` if this catalog holds it."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.tools)


@lru_cache(maxsize=1024)
def catalog_for(enabled: frozenset[str] | None, source: ToolRegistry = registry) -> ToolCatalog:
    """The catalog for a tenant's enabled tool names (None: every tool), built once per set."""
    return ToolCatalog(tuple(t for t in source if enabled is None or t.name in enabled))
