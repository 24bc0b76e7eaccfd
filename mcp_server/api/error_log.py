"""The item-error log of a run as a streamed JSON file, never held in memory whole."""

from collections.abc import AsyncIterator, Iterator
from uuid import UUID

import orjson
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from mcp_server.selectors import operation_errors

ROWS_PER_QUERY = 2000
BYTES_PER_CHUNK = 64 * 1024
_OPTIONS = orjson.OPT_UTC_Z


def error_log_chunks(operation_id: UUID) -> Iterator[bytes]:
    """A JSON array of the run's item errors, in chunks of about BYTES_PER_CHUNK bytes."""
    rows = (
        operation_errors(operation_id=operation_id)
        .values_list("id", "item", "message", "created_at")
        .iterator(chunk_size=ROWS_PER_QUERY)
    )
    buffer = bytearray(b"[")
    separator = b"\n"
    for pk, item, message, created_at in rows:
        buffer += separator
        buffer += orjson.dumps(
            {"id": pk, "item": item, "message": message, "created_at": created_at},
            option=_OPTIONS,
        )
        separator = b",\n"
        if len(buffer) >= BYTES_PER_CHUNK:
            yield bytes(buffer)
            buffer.clear()
    buffer += b"\n]\n"
    yield bytes(buffer)


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull a sync iterator chunk by chunk on the request's sync thread (where its cursor is)."""
    pull = sync_to_async(_next_chunk, thread_sensitive=True)
    while (chunk := await pull(chunks)) is not None:
        yield chunk


def error_log_response(request: HttpRequest, operation_id: UUID) -> StreamingHttpResponse:
    """A download of the log; an async iterator under ASGI, which would otherwise buffer it."""
    chunks = error_log_chunks(operation_id)
    content = _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type="application/json")
    filename = f"operation-{operation_id}-errors.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
