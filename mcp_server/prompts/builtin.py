"""The service's own prompts: explain the errors of a run; process a directory and summarise."""

from typing import Any

from accounts.principal import Principal
from mcp_server.prompts.registry import prompts
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.prompts import PromptArgument, user_resource, user_text
from mcp_server.protocol.resources import SCHEME
from mcp_server.resources.data import complete_directory, directory_uri, read_directory
from mcp_server.resources.registry import ResourceNotFound, Scope
from mcp_server.resources.runs import complete_run_id, errors_uri, read_errors, read_run, run_uri


def explain_run_errors(*, principal: Principal, arguments: dict[str, str]) -> list[dict[str, Any]]:
    """The run's summary and error log, and the request to explain what went wrong."""
    run_id = arguments["run_id"]
    try:
        summary = read_run(principal=principal, uri=run_uri(run_id), id=run_id)
        errors = read_errors(principal=principal, uri=errors_uri(run_id), id=run_id)
    except ResourceNotFound:
        raise invalid_params(f"Unknown run: {run_id}") from None
    return [
        user_text(
            f"Explain why items of run {run_id} failed. Its summary and its error log follow. "
            "Group the errors by cause, say which files each cause hit, and suggest what to "
            "change so that a new run succeeds."
        ),
        user_resource(summary[0]),
        user_resource(errors[0]),
    ]


def process_directory(*, principal: Principal, arguments: dict[str, str]) -> list[dict[str, Any]]:
    """The directory's listing, and the request to process it and summarise the run."""
    directory = arguments["directory"].strip("/")
    size = arguments.get("thumbnail_size") or "128"
    if not size.isascii() or not size.isdigit() or not 16 <= int(size) <= 2048:
        raise invalid_params("thumbnail_size must be a whole number from 16 to 2048")
    try:
        listing = read_directory(principal=principal, uri=directory_uri(directory), path=directory)
    except ResourceNotFound:
        raise invalid_params(f"{directory!r} is not a directory of your data directory") from None
    return [
        user_text(
            f"Make thumbnails of the images in {directory!r}: call the tool process_images with "
            f'{{"directory": "{directory}", "thumbnail_size": {int(size)}}}. When it ends, read '
            f"the run's resource {SCHEME}://runs/<run id> and its error log "
            f"{SCHEME}://runs/<run id>/errors, then summarise: how many images, how many "
            "failed and why, how long it took. The directory's listing follows."
        ),
        user_resource(listing[0]),
    ]


prompts.add(
    "explain_run_errors",
    title="Explain a run's errors",
    description="Why the failed items of one of your runs failed, and what to do about it.",
    arguments=(PromptArgument("run_id", "The run's id.", required=True),),
    render=explain_run_errors,
    complete={"run_id": complete_run_id},
)
prompts.add(
    "process_directory",
    title="Process a directory and summarise",
    description="Make thumbnails of a directory's images, then summarise the run.",
    arguments=(
        PromptArgument("directory", "A directory inside your data directory.", required=True),
        PromptArgument("thumbnail_size", "Longest side of a thumbnail in pixels (128)."),
    ),
    render=process_directory,
    scope=Scope(requires_tool="process_images"),
    complete={"directory": complete_directory},
)
