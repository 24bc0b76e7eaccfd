"""Progress tokens of requests (`params._meta.progressToken`)."""

from typing import Any

from mcp_server.protocol.errors import invalid_params


def progress_token(params: dict[str, Any]) -> str | int | None:
    """The `_meta.progressToken` of a request's params, if any (-32602 when malformed)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    token = meta.get("progressToken")
    if isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool)):
        return token
    if token is not None:
        raise invalid_params("_meta.progressToken must be a string or an integer")
    return None
