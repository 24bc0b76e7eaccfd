"""The caller's runs as resources: a run's summary, its item-error log, its thumbnails.

Every read goes through the history selectors, scoped by the caller: another user's or
tenant's run is exactly an unknown one (ResourceNotFound, -32002). Summaries and errors are
serialised by the REST API's serializers, so both show a run the same way.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings

from accounts.principal import Principal
from mcp_server.models import Operation
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.resources import (
    SCHEME,
    UriTemplate,
    blob_contents,
    resource_definition,
    text_contents,
)
from mcp_server.resources.registry import Contents, ResourceNotFound, Scope, resources
from mcp_server.selectors import operation_errors, operation_get, operation_ids_starting
from mcp_server.tools.builtin.images import THUMBNAIL_SUFFIX, THUMBNAILS_DIR
from mcp_server.tools.data_paths import DataPathError, resolve_tenant_path

JSON = "application/json"
RUN_TEMPLATE = f"{SCHEME}://runs/{{id}}"
ERRORS_TEMPLATE = f"{SCHEME}://runs/{{id}}/errors"
THUMBNAIL_TEMPLATE = f"{SCHEME}://runs/{{id}}/thumbnails/{{name}}"
_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z
_RUN, _ERRORS = UriTemplate.parse(RUN_TEMPLATE), UriTemplate.parse(ERRORS_TEMPLATE)


def run_uri(operation_id: UUID | str) -> str:
    """The URI of a run's summary."""
    return f"{SCHEME}://runs/{operation_id}"


def errors_uri(operation_id: UUID | str) -> str:
    """The URI of a run's item-error log."""
    return f"{run_uri(operation_id)}/errors"


def run_id_of(uri: str) -> str | None:
    """The run a summary or error-log URI names (None: the URI names no run)."""
    for template in (_RUN, _ERRORS):
        found = template.match(uri)
        if found is not None:
            return found["id"]
    return None


def _json(value: Any) -> str:
    return orjson.dumps(value, option=_OPTIONS).decode()


def _run(principal: Principal, uri: str, operation_id: str) -> Operation:
    run = operation_get(principal=principal, operation_id=operation_id)
    if run is None:
        raise ResourceNotFound(uri)
    return run


def run_listed(run: Operation) -> dict[str, Any]:
    """A run as resources/list shows it."""
    return resource_definition(
        run_uri(run.pk),
        f"run {run.pk}",
        title=f"{run.tool} · {run.status}",
        description=f"A run of {run.tool}, queued at {run.queued_at.isoformat()}",
        mime_type=JSON,
    )


def run_cursor_key(run: Operation) -> str:
    """Where a listing that ended with `run` resumes (its queued time and id)."""
    return f"{run.queued_at.isoformat()}|{run.pk}"


def run_after(key: str) -> tuple[datetime, UUID]:
    """The (queued_at, id) of a cursor key made by `run_cursor_key` (ValueError if not)."""
    moment, _, operation_id = key.partition("|")
    queued_at = datetime.fromisoformat(moment)
    if queued_at.tzinfo is None:
        raise ValueError("a cursor's time has a zone")
    return queued_at, UUID(operation_id)


def read_run(*, principal: Principal, uri: str, id: str) -> Contents:
    """A run's summary: what the REST API's run detail shows, as JSON."""
    # The REST API's serializers (and so DRF) load with the first read, not with every
    # process that sets Django up (the app's ready() registers this module).
    from mcp_server.api.serializers import RunDetailSerializer

    run = _run(principal, uri, id)
    return [text_contents(uri, _json(RunDetailSerializer(run).data), JSON)]


def read_errors(*, principal: Principal, uri: str, id: str) -> Contents:
    """A run's item errors, oldest first, at most MCP_RESOURCE_MAX_ENTRIES of them (the REST
    API's download has them all)."""
    from mcp_server.api.serializers import OperationErrorSerializer

    run = _run(principal, uri, id)
    limit = settings.MCP_RESOURCE_MAX_ENTRIES
    rows = list(operation_errors(operation_id=run.pk)[: limit + 1])
    log = {
        "run": str(run.pk),
        "tool": run.tool,
        "status": run.status,
        "error_count": run.error_count,
        "errors": OperationErrorSerializer(rows[:limit], many=True).data,
        "truncated": len(rows) > limit,
        "download": f"/api/runs/{run.pk}/errors.json",
    }
    return [text_contents(uri, _json(log), JSON)]


def read_thumbnail(*, principal: Principal, uri: str, id: str, name: str) -> Contents:
    """One thumbnail a `process_images` run made, as a JPEG blob."""
    run = _run(principal, uri, id)
    if not name.endswith(THUMBNAIL_SUFFIX):
        raise ResourceNotFound(uri)
    try:
        path = resolve_tenant_path(principal.tenant_slug, f"{THUMBNAILS_DIR}/{run.pk}/{name}")
    except DataPathError:
        raise ResourceNotFound(uri) from None
    if not path.is_file():
        raise ResourceNotFound(uri)
    size, limit = path.stat().st_size, settings.MCP_RESOURCE_MAX_BYTES
    if size > limit:
        raise invalid_params(f"{name!r} has {size:,} bytes; resources are read up to {limit:,}")
    return [blob_contents(uri, path.read_bytes(), "image/jpeg")]


def complete_run_id(*, principal: Principal, value: str, context: dict[str, str]) -> list[str]:
    """Ids of the caller's runs starting with `value`, newest first."""
    return operation_ids_starting(principal=principal, prefix=value, limit=101)


resources.add_template(
    RUN_TEMPLATE,
    name="run",
    title="A run",
    description="One of your runs: tool, arguments, status, progress, timings, result.",
    mime_type=JSON,
    read=read_run,
    complete={"id": complete_run_id},
)
resources.add_template(
    ERRORS_TEMPLATE,
    name="run-errors",
    title="A run's error log",
    description="The items of one of your runs that failed, oldest first.",
    mime_type=JSON,
    read=read_errors,
    complete={"id": complete_run_id},
)
resources.add_template(
    THUMBNAIL_TEMPLATE,
    name="run-thumbnail",
    title="A thumbnail",
    description="A thumbnail a process_images run made (its manifest.json names them).",
    mime_type="image/jpeg",
    read=read_thumbnail,
    scope=Scope(requires_tool="process_images"),
    complete={"id": complete_run_id},
)
