"""Where a tool's calls run: its declared placement, an operator's override, and the workers.

`local` runs a call in the web process that holds the connection, `worker` hands it to the
`manage.py runoperations` processes, and `auto` (the default) is local for tools declared
`duration="short"` and a worker for the others. Without workers (MCP_EXECUTION=inline) every
call is local. MCP_TOOL_PLACEMENT ("add=worker,process_images=local") overrides declarations;
it is checked at start-up against the tools every process loaded.
"""

from collections.abc import Collection, Mapping
from typing import Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from mcp_server.tools.registry import PLACEMENTS, Placement, Tool, registry

Where = Literal["local", "worker"]
SETTING = "MCP_TOOL_PLACEMENT"
_EXAMPLE = "e.g. add=worker,process_images=local"


def where(tool: Tool, overrides: Mapping[str, Placement]) -> Where:
    """Where `tool`'s calls run in a deployment with workers."""
    placement = overrides.get(tool.name, tool.placement)
    if placement == "auto":
        return "local" if tool.duration == "short" else "worker"
    return placement


def parse_overrides(text: str, *, tools: Collection[str], workers: bool) -> dict[str, Placement]:
    """The overrides `text` names (TOOL=PLACEMENT, comma separated); ImproperlyConfigured when
    a pair is malformed, names an unknown tool or placement or a tool twice, or asks for a
    worker where there are none."""
    overrides: dict[str, Placement] = {}
    for pair in (part.strip() for part in text.split(",")):
        if not pair:
            continue
        name, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or not name:
            raise ImproperlyConfigured(f"{SETTING}: {pair!r} is not TOOL=PLACEMENT ({_EXAMPLE})")
        if name not in tools:
            known = ", ".join(sorted(tools))
            raise ImproperlyConfigured(f"{SETTING}: no tool is called {name!r} (tools: {known})")
        if value not in PLACEMENTS:
            raise ImproperlyConfigured(
                f"{SETTING}: {pair!r}: the placement must be {', '.join(PLACEMENTS)}"
            )
        if name in overrides:
            raise ImproperlyConfigured(f"{SETTING}: {name!r} is named twice")
        if value == "worker" and not workers:
            raise ImproperlyConfigured(
                f"{SETTING}: {pair!r} needs workers: set MCP_EXECUTION=worker (with "
                "MCP_EXECUTION=inline every tool runs in the web process)"
            )
        overrides[name] = value
    return overrides


def overrides_from_settings() -> dict[str, Placement]:
    """The operator's overrides (MCP_TOOL_PLACEMENT), checked against the registered tools."""
    return parse_overrides(
        settings.MCP_TOOL_PLACEMENT,
        tools=[tool.name for tool in registry],
        workers=settings.MCP_EXECUTION == "worker",
    )
