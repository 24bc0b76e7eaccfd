"""`delete_run_thumbnails`: delete what a `process_images` run made, once the user confirms.

The question comes before anything is changed, so the call is safe to run again from the
start (a 2026-07-28 client's retry does exactly that). Only the caller's own runs: another
user's run is answered exactly as an unknown one.
"""

import shutil
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from channels.db import database_sync_to_async
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from accounts.principal import Principal
from mcp_server.runtime.context import ToolContext
from mcp_server.selectors import operation_get
from mcp_server.tools.builtin.images import THUMBNAIL_SUFFIX, THUMBNAILS_DIR
from mcp_server.tools.data_paths import tenant_root
from mcp_server.tools.registry import Summarized, ToolError, tool

CONFIRM_KEY = "confirm_delete"
_CONFIRM_SCHEMA = {
    "type": "object",
    "properties": {
        "confirm": {"type": "boolean", "title": "Delete them", "description": "Cannot be undone."}
    },
    "required": ["confirm"],
}


class Deletion(TypedDict):
    """What a `delete_run_thumbnails` call did."""

    run: str
    deleted: int
    outcome: str  # "deleted", "declined", "cancelled" or "nothing to delete"


_OUTPUT_SCHEMA = TypeAdapter(Deletion).json_schema()


def _own_run(principal: Principal, run_id: str) -> UUID | None:
    run = operation_get(principal=principal, operation_id=run_id)
    # A tenant admin may read the tenant's runs; deleting is for the run's own user only.
    return run.pk if run is not None and run.user_id == principal.user_id else None


def _thumbnails(directory: Path) -> int | None:
    """How many thumbnails `directory` holds; None when the run left none there."""
    if not directory.is_dir():
        return None
    return sum(1 for entry in directory.iterdir() if entry.name.endswith(THUMBNAIL_SUFFIX))


def _declined(answer: dict[str, Any]) -> str | None:
    """Why the answer is not a confirmation ("declined" or "cancelled"), None when it is."""
    action = answer.get("action")
    if action == "cancel":
        return "cancelled"
    content = answer.get("content")
    if action == "accept" and isinstance(content, dict) and content.get("confirm") is True:
        return None
    return "declined"


@tool(
    title="Delete a run's thumbnails",
    output_schema=_OUTPUT_SCHEMA,
    annotations={"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True},
    duration="short",
)
async def delete_run_thumbnails(
    run_id: Annotated[str, Field(description="The id of one of your process_images runs.")],
    ctx: ToolContext,
) -> Summarized:
    """Delete the thumbnails a process_images run made, after asking you to confirm."""
    await ctx.history_settled()  # the run may have ended a moment ago, in this process
    run = await database_sync_to_async(_own_run)(ctx.principal, run_id)
    if run is None:
        raise ToolError(f"Unknown run: {run_id}")
    directory = tenant_root(ctx.principal.tenant_slug) / THUMBNAILS_DIR / str(run)
    count = await ctx.run_blocking(_thumbnails, directory)
    if count is None:
        done = Deletion(run=str(run), deleted=0, outcome="nothing to delete")
        return Summarized(done, f"Run {run} has no thumbnails: nothing deleted.")
    answer = await ctx.elicit(
        f"Delete the {count:,} thumbnails of run {run}? This cannot be undone.",
        _CONFIRM_SCHEMA,
        key=CONFIRM_KEY,
    )
    refusal = _declined(answer)
    if refusal is not None:
        kept = Deletion(run=str(run), deleted=0, outcome=refusal)
        return Summarized(kept, f"Nothing deleted: you {refusal} (run {run} keeps {count:,}).")
    await ctx.run_blocking(shutil.rmtree, directory)
    done = Deletion(run=str(run), deleted=count, outcome="deleted")
    return Summarized(done, f"Deleted the {count:,} thumbnails of run {run}.")
