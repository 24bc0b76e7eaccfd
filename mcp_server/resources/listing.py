"""One page of resources/list: fixed resources and data directories first, then the caller's
runs, newest first (a keyset cursor resumes after the last run shown)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from accounts.principal import Principal
from mcp_server.resources.data import top_directories
from mcp_server.resources.registry import ResourceRegistry
from mcp_server.resources.runs import run_cursor_key, run_listed
from mcp_server.selectors import operation_page


def resource_page(
    *,
    principal: Principal,
    registry: ResourceRegistry,
    after: tuple[datetime, UUID] | None,
    size: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """The resources of one page and the key the next page resumes after (None: the last)."""
    listed: list[dict[str, Any]] = []
    if after is None:
        listed += [resource.definition() for resource in registry.resources_for(principal)]
        listed += top_directories(principal, size)
    runs = operation_page(principal=principal, after=after, size=size)
    listed += [run_listed(run) for run in runs[:size]]
    return listed, run_cursor_key(runs[size - 1]) if len(runs) > size else None
