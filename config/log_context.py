"""Who and what a log line is about: tenant, user, connection, request, operation, trace.

The seams set these once (the WebSocket consumer for its connection, the session for each
request, the runner for each operation, a worker for the call it takes) in a context variable,
so every line logged while handling them carries the ids without being passed them.
`LogContextFilter` copies the known ones onto each record; the JSON formatter writes them.
"""

import dataclasses
import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar, Token
from typing import Any
from uuid import UUID

# W3C trace context: version-traceid-parentid-flags, lowercase hex; anything else is ignored
# (a header a client controls never reaches a log line unless it has this exact shape).
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
TRACEPARENT_HEADER = b"traceparent"


@dataclasses.dataclass(frozen=True, slots=True)
class LogContext:
    """The ids known where a record is logged (None: not known there)."""

    tenant: str | None = None
    user: int | None = None
    connection: str | None = None
    request: str | int | None = None  # a JSON-RPC id, written as text
    operation: "UUID | str | None" = None  # written as text
    traceparent: str | None = None


_EMPTY = LogContext()
_FIELDS = tuple(field.name for field in dataclasses.fields(LogContext))
_AS_TEXT = frozenset({"request", "operation"})
_current: ContextVar[LogContext] = ContextVar("log_context", default=_EMPTY)


def current() -> LogContext:
    """The log context of the running task or thread."""
    return _current.get()


def bind(**fields: Any) -> Token[LogContext]:
    """Add `fields` to the log context from here on in this task; `reset` undoes it."""
    return _current.set(dataclasses.replace(_current.get(), **fields))


def bind_operation(operation_id: UUID) -> Token[LogContext]:
    """Name the operation in the log context from here on in this task (once per call: built
    directly and stringified only when a line is logged, as `bind` costs several times as much)."""
    c = _current.get()
    return _current.set(
        LogContext(c.tenant, c.user, c.connection, c.request, operation_id, c.traceparent)
    )


def reset(token: Token[LogContext]) -> None:
    """Restore the log context `bind` replaced."""
    _current.reset(token)


def valid_traceparent(value: Any) -> str | None:
    """`value` when it is a W3C traceparent, else None."""
    if isinstance(value, str) and len(value) == 55 and _TRACEPARENT.fullmatch(value):
        return value
    return None


def handshake_traceparent(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The traceparent header of an ASGI scope's `headers`, if valid."""
    for name, value in headers:
        if name == TRACEPARENT_HEADER:
            return valid_traceparent(value.decode("latin-1"))
    return None


def bind_connection(scope: dict[str, Any], connection_id: str) -> None:
    """Name the connection of an authenticated ASGI `scope` in this task's log context."""
    principal = scope.get("principal")
    bind(
        tenant=getattr(principal, "tenant_slug", None),
        user=getattr(principal, "user_id", None),
        connection=connection_id,
        traceparent=handshake_traceparent(scope.get("headers") or ()),
    )


def bind_call(call: Any, traceparent: Any) -> None:
    """Name the caller, connection, request and trace of a call (a runtime CallRequest) taken
    from another process."""
    # Built directly: dataclasses.replace costs several times as much, on every call.
    request = str(call.request_id) if call.request_id not in (None, "") else None
    c = _current.get()
    _current.set(
        LogContext(
            call.principal.tenant_slug,
            call.principal.user_id,
            call.connection_id or None,
            request,
            c.operation,
            valid_traceparent(traceparent),
        )
    )


def enter_request(request: Any) -> Token[LogContext]:
    """Name `request` (a protocol Request) and the traceparent of its `params._meta`, if it
    has one, in the log context until `reset`."""
    meta = request.params.get("_meta") if isinstance(request.params, dict) else None
    trace = valid_traceparent(meta.get("traceparent")) if isinstance(meta, dict) else None
    c = _current.get()
    # Built directly: dataclasses.replace costs several times as much, on every request.
    return _current.set(
        LogContext(c.tenant, c.user, c.connection, request.id, c.operation, trace or c.traceparent)
    )


class LogContextFilter(logging.Filter):
    """Puts the known ids of the log context on each record (`tenant`, `user`, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Copy the set fields of the current log context onto `record`; never drops one."""
        context = _current.get()
        if context is not _EMPTY:
            for name in _FIELDS:
                value = getattr(context, name)
                if value is not None and not hasattr(record, name):
                    setattr(record, name, str(value) if name in _AS_TEXT else value)
        return True
