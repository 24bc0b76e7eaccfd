"""The tools one tenant may list and call, shared by all connections of that tenant setting."""

from functools import lru_cache

from accounts.principal import Principal
from accounts.tool_sets import allows
from mcp_server.tools.registry import Tool, ToolRegistry, registry


class ToolCatalog:
    """An immutable, ordered view of the tools a tenant may use."""

    __slots__ = ("_by_name", "_source", "tools")

    def __init__(self, tools: tuple[Tool, ...], source: ToolRegistry = registry) -> None:
        self.tools = tools
        self._by_name = {tool.name: tool for tool in tools}
        self._source = source

    def get(self, name: str) -> Tool | None:
        """The tool called `name` if this catalog holds it."""
        return self._by_name.get(name)

    def refusal(self, name: str) -> str:
        """Why a call of `name`, which this catalog does not hold, is refused (an opt-in tool
        the tenant does not have is unknown to it: its name is not even confirmed)."""
        tool = self._source.get(name)
        if tool is not None and not tool.opt_in:
            return f"Tool {name!r} is not enabled for your tenant"
        return f"Unknown tool: {name}"

    def __len__(self) -> int:
        return len(self.tools)


@lru_cache(maxsize=1024)
def catalog_for(
    enabled: frozenset[str] | None,
    disabled: frozenset[str] = frozenset(),
    source: ToolRegistry = registry,
) -> ToolCatalog:
    """The catalog of a tenant's tool set (accounts/tool_sets.py: `enabled` None means every
    tool but `disabled` and the opt-in ones), in registry order, built once per set."""
    tools = tuple(t for t in source if allows(enabled, disabled, t.name, opt_in=t.opt_in))
    return ToolCatalog(tools, source)


def catalog_for_principal(principal: Principal) -> ToolCatalog:
    """The catalog of the caller's tenant, as resolved when the caller authenticated."""
    return catalog_for(principal.enabled_tools, principal.disabled_tools)
