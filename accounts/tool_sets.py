"""A tenant's tool set: as stored on Tenant, as a Principal carries it, and what it allows.

Two shapes, one rule: a non-empty `enabled_tools` is the whole set (tools added to the server
later stay off, `disabled_tools` is ignored); otherwise every tool is on but `disabled_tools`
(tools added later are on). An opt-in tool (e.g. the conformance fixtures) is the exception to
"every tool": only a tenant that names it in `enabled_tools` has it. accounts knows no tool
registry: it only resolves names, and is told whether a name is opt-in.
"""

from collections.abc import Iterable
from typing import Any

ToolSet = tuple[frozenset[str] | None, frozenset[str]]

EVERY_TOOL: ToolSet = (None, frozenset())


def tool_set(enabled_tools: Any, disabled_tools: Any) -> ToolSet:
    """(enabled, disabled) from a tenant's stored values (JSON lists, None or empty)."""
    if enabled_tools:
        return frozenset(enabled_tools), frozenset()
    return None, frozenset(disabled_tools or ())


def allows(
    enabled: frozenset[str] | None, disabled: frozenset[str], name: str, *, opt_in: bool = False
) -> bool:
    """Whether a tool set lets the tenant list and call the tool `name` (`opt_in`: a tool only
    tenants naming it in `enabled_tools` have)."""
    if enabled is not None:
        return name in enabled
    return not opt_in and name not in disabled


def encoded(enabled: frozenset[str] | None, disabled: frozenset[str]) -> dict[str, Any]:
    """The tool set as message fields: `enabled_tools` (a sorted list or None) and
    `disabled_tools` (a sorted list)."""
    return {
        "enabled_tools": sorted(enabled) if enabled is not None else None,
        "disabled_tools": sorted(disabled),
    }


def decoded(fields: dict[str, Any]) -> ToolSet:
    """The tool set of message fields made by `encoded` (a missing key: that part empty)."""
    return tool_set(fields.get("enabled_tools"), fields.get("disabled_tools"))


def names_sorted(names: Iterable[str]) -> list[str]:
    """Tool names as stored: distinct and sorted."""
    return sorted(set(names))
