"""Channel-layer names and the typed messages that cross processes.

Every message is a frozen dataclass with one `encode()` (to the dict the channel layer
carries, its `type` being the Channels handler name) and one `decode()`; receivers call
`decode_message` once and work with the typed value. All processes of a cluster run the same
build, so the keys are this module's alone to change.

Channel layers deliver at most once and drop messages when full: nothing here is the only
record of something that must arrive. Results and terminal statuses are persisted first;
these messages are the fast path, and the receivers recover from the database when one is lost.
"""

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID

from accounts import tool_sets
from accounts.limits import TenantLimits
from config.log_context import valid_traceparent
from mcp_server.operations.lifecycle import Stop

if TYPE_CHECKING:
    from mcp_server.models import Operation
    from mcp_server.runtime.runner import CallRequest, OperationRunner

# The workers' queue of fan-out chunks (`ctx.fan_out`): one worker takes each `chunk.start`.
CHUNKS_CHANNEL = "mcp-chunks"
# Every process that runs operations (web processes inline, workers): cancel and attach go here.
RUNNERS_GROUP = "mcp-runners"
# Every web process (one membership per process, not per connection): broadcasts go here.
WEB_GROUP = "mcp-web"

# To a worker, as an entry of the dispatch streams (cluster/dispatch.py).
OPERATION_START = "operation.start"
# To RUNNERS_GROUP.
OPERATION_CANCEL = "operation.cancel"
OPERATION_ATTACH = "operation.attach"
OPERATION_DETACH = "operation.detach"
# The client's answers to a task's questions (tasks/update), for the process that runs it.
OPERATION_ANSWER = "operation.answer"
# To a connection's consumer channel (a listener of an operation).
OPERATION_PROGRESS = "operation.progress"
OPERATION_LOG = "operation.log"
OPERATION_FINISHED = "operation.finished"
# What a task of the tasks extension waits for its client to answer, as it changes.
OPERATION_ASKING = "operation.asking"
# To a worker, through CHUNKS_CHANNEL; a chunk's cancel to RUNNERS_GROUP; its signs of life and
# its end to the channel of the process whose call fanned it out.
CHUNK_START = "chunk.start"
CHUNK_CANCEL = "chunk.cancel"
CHUNK_ALIVE = "chunk.alive"
CHUNK_DONE = "chunk.done"
CHUNK_REPLIES = frozenset({CHUNK_ALIVE, CHUNK_DONE})
# To WEB_GROUP.
BROADCAST = "mcp.broadcast"
# To RUNNERS_GROUP, whose members are every web process (it closes its connections) and every
# worker (it stops the work it runs): access taken away, and a tenant's new tool set and limits.
ACCESS_REVOKED = "access.revoked"
TENANT_CHANGED = "access.tenant_changed"
ACCESS_MESSAGES = frozenset({ACCESS_REVOKED, TENANT_CHANGED})
# To WEB_GROUP: what a Streamable HTTP client POSTed to one process for an exchange or a stream
# of its session that another process holds (a cancellation, a response), and a session's end.
HTTP_SESSION_MESSAGE = "http.session.message"
HTTP_SESSION_ENDED = "http.session.ended"
HTTP_SESSION_SUBSCRIBED = "http.session.subscribed"
HTTP_MESSAGES = frozenset({HTTP_SESSION_MESSAGE, HTTP_SESSION_ENDED, HTTP_SESSION_SUBSCRIBED})
# To the channel of a process that resumed a Streamable HTTP stream another process writes.
HTTP_STREAM_EVENT = "http.stream.event"
# To RUNNERS_GROUP: a connection subscribed to (or unsubscribed from) an operation's resources.
RUN_WATCH = "resource.watch"
RUN_UNWATCH = "resource.unwatch"
RUN_WATCH_MESSAGES = frozenset({RUN_WATCH, RUN_UNWATCH})
# To a connection's consumer channel: the run's history changed (coalesced by the runner).
RUN_UPDATED = "resource.updated"

# A message as the channel layer carries it.
Message = dict[str, Any]


class MalformedMessage(ValueError):
    """A channel-layer message that does not decode to the type it names."""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _uuid(value: Any) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise MalformedMessage(f"not an operation id: {value!r}") from None


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class OperationStart:
    """Hands a call to a worker (a `recorded` call's row exists already, `queued`; a plain
    call's row is written by the worker, with its end for a short call)."""

    TYPE: ClassVar[str] = OPERATION_START

    id: UUID
    principal: dict[str, Any]
    tool: str
    arguments: dict[str, Any]
    connection_id: str
    request_id: str | int
    progress_token: str | int | None
    queued_at: datetime | None
    is_task: bool
    task_ttl: int | None
    listener: str | None
    # The W3C trace context the request carried, for the worker's log lines (valid or None).
    traceparent: str | None = None
    # A task of the tasks extension asks its client through the task, within these.
    asks_through_task: bool = False
    client_capabilities: dict[str, Any] = dataclasses.field(default_factory=dict)
    # A 2026-07-28 call's input round (`InputRound.carried`), already verified; None: none.
    inputs: dict[str, Any] | None = None
    # Whether the call's row was inserted before the hand-off (the worker claims it then).
    recorded: bool = True
    # Where its outcome may go instead of the channel layer (Dispatch.reply_key); None: not.
    reply_to: str | None = None

    @classmethod
    def of(
        cls,
        request: "CallRequest",
        listener: str | None,
        *,
        traceparent: str | None = None,
        reply_to: str | None = None,
    ) -> Self:
        """The hand-off of `request`, whose events go to `listener` (`traceparent`: the
        request's trace context, if known; `reply_to`: where its outcome may go)."""
        assert request.operation_id is not None
        principal = dataclasses.asdict(request.principal)
        principal.update(
            tool_sets.encoded(request.principal.enabled_tools, request.principal.disabled_tools)
        )
        return cls(
            id=request.operation_id,
            principal=principal,
            tool=request.tool.name,
            arguments=request.arguments,
            connection_id=request.connection_id,
            request_id=request.request_id,
            progress_token=request.progress_token,
            queued_at=request.queued_at,
            is_task=request.is_task,
            task_ttl=request.task_ttl,
            listener=listener,
            traceparent=traceparent,
            asks_through_task=request.asks_through_task,
            client_capabilities=request.client_capabilities,
            inputs=request.inputs.carried() if request.inputs is not None else None,
            recorded=request.recorded,
            reply_to=reply_to,
        )

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "id": str(self.id),
            "principal": self.principal,
            "tool": self.tool,
            "arguments": self.arguments,
            "connection_id": self.connection_id,
            "request_id": self.request_id,
            "progress_token": self.progress_token,
            "queued_at": self.queued_at.isoformat() if self.queued_at else None,
            "is_task": self.is_task,
            "task_ttl": self.task_ttl,
            "listener": self.listener,
            "traceparent": self.traceparent,
            "asks_through_task": self.asks_through_task,
            "client_capabilities": self.client_capabilities,
            "inputs": self.inputs,
            "recorded": self.recorded,
            "reply_to": self.reply_to,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        principal, tool = message.get("principal"), message.get("tool")
        if not isinstance(principal, dict) or not isinstance(tool, str):
            raise MalformedMessage("operation.start needs a principal and a tool")
        listener = message.get("listener")
        return cls(
            id=_uuid(message.get("id")),
            principal=principal,
            tool=tool,
            arguments=message.get("arguments") or {},
            connection_id=message.get("connection_id") or "",
            request_id=message.get("request_id") or "",
            progress_token=message.get("progress_token"),
            queued_at=_moment(message.get("queued_at")),
            is_task=bool(message.get("is_task")),
            task_ttl=_optional_int(message.get("task_ttl")),
            listener=str(listener) if listener else None,
            traceparent=valid_traceparent(message.get("traceparent")),
            asks_through_task=bool(message.get("asks_through_task")),
            client_capabilities=_object(message.get("client_capabilities")),
            inputs=inputs if isinstance(inputs := message.get("inputs"), dict) else None,
            recorded=bool(message.get("recorded", True)),
            reply_to=str(reply_to) if (reply_to := message.get("reply_to")) else None,
        )


@dataclass(frozen=True, slots=True)
class OperationCancel:
    """Stop an operation wherever it runs (`reason`: why; None: a cancel recorded in history)."""

    TYPE: ClassVar[str] = OPERATION_CANCEL

    id: UUID
    reason: Stop | None = None

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        fields = self.reason.encode() if self.reason is not None else {}
        return {"type": self.TYPE, "id": str(self.id), **fields}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        return cls(id=_uuid(message.get("id")), reason=Stop.decode(message))


@dataclass(frozen=True, slots=True)
class OperationAnswer:
    """The client's input responses to a task's questions, by key, for wherever it runs."""

    TYPE: ClassVar[str] = OPERATION_ANSWER

    id: UUID
    responses: dict[str, Any]

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "id": str(self.id), "responses": self.responses}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        responses = message.get("responses")
        if not isinstance(responses, dict):
            raise MalformedMessage("operation.answer needs responses")
        return cls(id=_uuid(message.get("id")), responses=responses)


@dataclass(frozen=True, slots=True)
class OperationAttach:
    """Make `channel` a listener of an operation, wherever it runs."""

    TYPE: ClassVar[str] = OPERATION_ATTACH

    id: UUID
    channel: str

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "id": str(self.id), "channel": self.channel}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        channel = message.get("channel")
        if not isinstance(channel, str):
            raise MalformedMessage(f"{cls.TYPE} needs a channel")
        return cls(id=_uuid(message.get("id")), channel=channel)


@dataclass(frozen=True, slots=True)
class OperationDetach(OperationAttach):
    """Stop sending an operation's events to `channel`."""

    TYPE: ClassVar[str] = OPERATION_DETACH


@dataclass(frozen=True, slots=True)
class OperationAsking:
    """The questions a running task now waits for its client to answer (None: none)."""

    TYPE: ClassVar[str] = OPERATION_ASKING

    id: UUID
    input_requests: dict[str, Any] | None

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "id": str(self.id), "input_requests": self.input_requests}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        asked = message.get("input_requests")
        if asked is not None and not isinstance(asked, dict):
            raise MalformedMessage("operation.asking needs an object or null")
        return cls(id=_uuid(message.get("id")), input_requests=asked or None)


@dataclass(frozen=True, slots=True)
class OperationProgress:
    """How far an operation got (each listening connection adds its client's token)."""

    TYPE: ClassVar[str] = OPERATION_PROGRESS

    id: UUID
    progress: float
    total: float | None = None
    message: str | None = None

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "id": str(self.id),
            "progress": self.progress,
            "total": self.total,
            "message": self.message,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        progress = _number(message.get("progress"))
        if progress is None:
            raise MalformedMessage("operation.progress needs a number")
        text = message.get("message")
        return cls(
            id=_uuid(message.get("id")),
            progress=progress,
            total=_number(message.get("total")),
            message=text if isinstance(text, str) else None,
        )


@dataclass(frozen=True, slots=True)
class OperationLog:
    """A tool's log message (each connection filters by its client's level)."""

    TYPE: ClassVar[str] = OPERATION_LOG

    id: UUID
    level: str
    data: Any
    logger: str | None

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "id": str(self.id),
            "level": self.level,
            "data": self.data,
            "logger": self.logger,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        level, logger = message.get("level"), message.get("logger")
        return cls(
            id=_uuid(message.get("id")),
            level=level if isinstance(level, str) else "info",
            data=message.get("data"),
            logger=logger if isinstance(logger, str) else None,
        )


@dataclass(frozen=True, slots=True)
class OperationFinished:
    """How an operation ended (already in history)."""

    TYPE: ClassVar[str] = OPERATION_FINISHED

    id: UUID
    status: str
    result: dict[str, Any] | None
    error: str
    progress: float | None = None
    total: float | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_row(cls, operation: "Operation") -> Self:
        """The event for an operation that history shows ended."""
        return cls(
            id=operation.pk,
            status=operation.status,
            result=operation.result,
            error=operation.error,
            progress=operation.progress,
            total=operation.total,
            finished_at=operation.finished_at,
        )

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "id": str(self.id),
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "progress": self.progress,
            "total": self.total,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        status, result, error = message.get("status"), message.get("result"), message.get("error")
        return cls(
            id=_uuid(message.get("id")),
            status=status if isinstance(status, str) and status else "failed",
            result=result if isinstance(result, dict) else None,
            error=error if isinstance(error, str) else "",
            progress=_number(message.get("progress")),
            total=_number(message.get("total")),
            finished_at=_moment(message.get("finished_at")),
        )


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A `notifications/message` for every matching client of every web process."""

    TYPE: ClassVar[str] = BROADCAST

    level: str
    data: Any
    tenant_id: int | None = None
    user_id: int | None = None

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "level": self.level,
            "data": self.data,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        level = message.get("level")
        return cls(
            level=level if isinstance(level, str) and level else "notice",
            data=message.get("data"),
            tenant_id=_optional_int(message.get("tenant_id")),
            user_id=_optional_int(message.get("user_id")),
        )


@dataclass(frozen=True, slots=True)
class AccessRevoked:
    """Access ended for these tokens, users or tenants (`kind`: the Principal attribute);
    `status` and `reason` are what a handshake would be refused with now."""

    TYPE: ClassVar[str] = ACCESS_REVOKED

    kind: str
    ids: list[int]
    status: int
    reason: str

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "kind": self.kind,
            "ids": self.ids,
            "status": self.status,
            "reason": self.reason,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        kind, ids = message.get("kind"), message.get("ids")
        if not isinstance(kind, str) or not isinstance(ids, list):
            raise MalformedMessage("access.revoked needs a kind and a list of ids")
        return cls(
            kind=kind,
            ids=[i for i in ids if isinstance(i, int)],
            status=_optional_int(message.get("status")) or 403,
            reason=str(message.get("reason") or ""),
        )


@dataclass(frozen=True, slots=True)
class TenantChanged:
    """A tenant's settings now: its tool set (`enabled_tools`; None: every tool but
    `disabled_tools`) and its limits."""

    TYPE: ClassVar[str] = TENANT_CHANGED

    tenant_id: int
    enabled_tools: frozenset[str] | None
    disabled_tools: frozenset[str]
    limits: TenantLimits

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "tenant_id": self.tenant_id,
            **tool_sets.encoded(self.enabled_tools, self.disabled_tools),
            "limits": self.limits.as_dict(),
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        tenant_id, limits = _optional_int(message.get("tenant_id")), message.get("limits")
        if tenant_id is None or not isinstance(limits, dict):
            raise MalformedMessage(f"{cls.TYPE} needs a tenant id and limits")
        enabled, disabled = tool_sets.decoded(message)
        return cls(
            tenant_id=tenant_id,
            enabled_tools=enabled,
            disabled_tools=disabled,
            limits=TenantLimits.from_dict(limits),
        )


@dataclass(frozen=True, slots=True)
class HttpSessionMessage:
    """A JSON-RPC notification or response a client POSTed for its HTTP session."""

    TYPE: ClassVar[str] = HTTP_SESSION_MESSAGE

    session_id: str
    payload: dict[str, Any]

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "session_id": self.session_id, "payload": self.payload}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        session_id, payload = message.get("session_id"), message.get("payload")
        if not isinstance(session_id, str) or not isinstance(payload, dict):
            raise MalformedMessage(f"{cls.TYPE} needs a session id and a payload object")
        return cls(session_id=session_id, payload=payload)


@dataclass(frozen=True, slots=True)
class HttpSessionEnded:
    """An HTTP session ended (DELETE, revoked access): its streams and exchanges stop."""

    TYPE: ClassVar[str] = HTTP_SESSION_ENDED

    session_id: str
    reason: str

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "session_id": self.session_id, "reason": self.reason}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        session_id = message.get("session_id")
        if not isinstance(session_id, str):
            raise MalformedMessage(f"{cls.TYPE} needs a session id")
        return cls(session_id=session_id, reason=str(message.get("reason") or ""))


@dataclass(frozen=True, slots=True)
class HttpSessionSubscribed:
    """An HTTP session's resource subscriptions changed (resources/subscribe or unsubscribe
    on any process): the process holding its GET stream watches `uris` from now on."""

    TYPE: ClassVar[str] = HTTP_SESSION_SUBSCRIBED

    session_id: str
    uris: tuple[str, ...]

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "session_id": self.session_id, "uris": list(self.uris)}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        session_id, uris = message.get("session_id"), message.get("uris")
        if not isinstance(session_id, str):
            raise MalformedMessage(f"{cls.TYPE} needs a session id")
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise MalformedMessage(f"{cls.TYPE} needs a list of URIs")
        return cls(session_id=session_id, uris=tuple(uris))


@dataclass(frozen=True, slots=True)
class HttpStreamEvent:
    """One SSE event of a stream, for the process that resumed it (already stored)."""

    TYPE: ClassVar[str] = HTTP_STREAM_EVENT

    event_id: str
    data: str
    final: bool

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "event_id": self.event_id,
            "data": self.data,
            "final": self.final,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        event_id, data = message.get("event_id"), message.get("data")
        if not isinstance(event_id, str) or not isinstance(data, str):
            raise MalformedMessage(f"{cls.TYPE} needs an event id and data")
        return cls(event_id=event_id, data=data, final=message.get("final") is True)


@dataclass(frozen=True, slots=True)
class RunWatch(OperationAttach):
    """`channel` wants to hear when the operation's history changes (resources/subscribe)."""

    TYPE: ClassVar[str] = RUN_WATCH


@dataclass(frozen=True, slots=True)
class RunUnwatch(OperationAttach):
    """`channel` no longer wants to hear of the operation's changes."""

    TYPE: ClassVar[str] = RUN_UNWATCH


@dataclass(frozen=True, slots=True)
class RunUpdated:
    """The operation's history changed (its row; `errors`: its item errors too; `ended`: it
    reached a terminal status, the last update)."""

    TYPE: ClassVar[str] = RUN_UPDATED

    id: UUID
    errors: bool
    ended: bool

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "id": str(self.id), "errors": self.errors, "ended": self.ended}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        return cls(
            id=_uuid(message.get("id")),
            errors=message.get("errors") is True,
            ended=message.get("ended") is True,
        )


def _pairs(value: Any) -> list[tuple[int, Any]]:
    if not isinstance(value, list):
        raise MalformedMessage("chunk.done needs lists of [position, value]")
    pairs = []
    for pair in value:
        if not isinstance(pair, list | tuple) or len(pair) != 2 or _optional_int(pair[0]) is None:
            raise MalformedMessage(f"not a [position, value] pair: {pair!r}")
        pairs.append((pair[0], pair[1]))
    return pairs


@dataclass(frozen=True, slots=True)
class ChunkStart:
    """Hands one fan-out chunk to a worker; its signs of life and end go to `reply_to`."""

    TYPE: ClassVar[str] = CHUNK_START

    chunk_id: str
    operation_id: str
    index: int
    function: str
    start: int
    items: list[Any]
    params: dict[str, Any]
    # The call's tenant, user and connection: the chunk's place in the worker's fair order.
    key: tuple[Any, Any, Any]
    reply_to: str

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "chunk_id": self.chunk_id,
            "operation_id": self.operation_id,
            "index": self.index,
            "function": self.function,
            "start": self.start,
            "items": self.items,
            "params": self.params,
            "key": list(self.key),
            "reply_to": self.reply_to,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        fields = {name: message.get(name) for name in ("chunk_id", "function", "reply_to")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            raise MalformedMessage("chunk.start needs a chunk id, a function and a reply channel")
        items, params, key = message.get("items"), message.get("params"), message.get("key")
        index, start = _optional_int(message.get("index")), _optional_int(message.get("start"))
        if not isinstance(items, list) or not isinstance(params, dict) or index is None:
            raise MalformedMessage("chunk.start needs items, params and an index")
        if not isinstance(key, list) or len(key) != 3 or start is None:
            raise MalformedMessage("chunk.start needs a tenant, user and connection key")
        return cls(
            chunk_id=str(fields["chunk_id"]),
            operation_id=str(message.get("operation_id") or ""),
            index=index,
            function=str(fields["function"]),
            start=start,
            items=items,
            params=params,
            key=(key[0], key[1], key[2]),
            reply_to=str(fields["reply_to"]),
        )


@dataclass(frozen=True, slots=True)
class ChunkCancel:
    """Stop these chunks wherever they are: queued ones never start, running ones stop."""

    TYPE: ClassVar[str] = CHUNK_CANCEL

    chunk_ids: tuple[str, ...]

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "chunk_ids": list(self.chunk_ids)}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        ids = message.get("chunk_ids")
        if not isinstance(ids, list) or not all(isinstance(key, str) for key in ids):
            raise MalformedMessage("chunk.cancel needs a list of chunk ids")
        return cls(chunk_ids=tuple(ids))


@dataclass(frozen=True, slots=True)
class ChunkAlive(ChunkCancel):
    """The worker `runner` holds these chunks (queued or running): they are not lost."""

    TYPE: ClassVar[str] = CHUNK_ALIVE

    runner: str = ""

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {"type": self.TYPE, "chunk_ids": list(self.chunk_ids), "runner": self.runner}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        runner = message.get("runner")
        return cls(
            chunk_ids=ChunkCancel.decode(message).chunk_ids,
            runner=runner if isinstance(runner, str) else "",
        )


@dataclass(frozen=True, slots=True)
class ChunkDone:
    """How a chunk ended: its items' values and failures by position; or `error` (the item
    function raised something other than ItemFailed), or `lost` (its pool process died)."""

    TYPE: ClassVar[str] = CHUNK_DONE

    chunk_id: str
    runner: str
    values: list[tuple[int, Any]]
    errors: list[tuple[int, str]]
    error: str = ""
    lost: bool = False

    def encode(self) -> Message:
        """The message as the channel layer carries it."""
        return {
            "type": self.TYPE,
            "chunk_id": self.chunk_id,
            "runner": self.runner,
            "values": [list(pair) for pair in self.values],
            "errors": [list(pair) for pair in self.errors],
            "error": self.error,
            "lost": self.lost,
        }

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        chunk_id, runner, error = (message.get(k) for k in ("chunk_id", "runner", "error"))
        if not isinstance(chunk_id, str):
            raise MalformedMessage("chunk.done needs a chunk id")
        errors = [(position, str(reason)) for position, reason in _pairs(message.get("errors"))]
        return cls(
            chunk_id=chunk_id,
            runner=runner if isinstance(runner, str) else "",
            values=_pairs(message.get("values")),
            errors=errors,
            error=error if isinstance(error, str) else "",
            lost=bool(message.get("lost")),
        )


ClusterMessage = (
    OperationStart
    | OperationCancel
    | OperationAnswer
    | OperationAttach
    | OperationDetach
    | OperationProgress
    | OperationLog
    | OperationFinished
    | OperationAsking
    | Broadcast
    | AccessRevoked
    | TenantChanged
    | HttpSessionMessage
    | HttpSessionEnded
    | HttpSessionSubscribed
    | HttpStreamEvent
    | RunWatch
    | RunUnwatch
    | RunUpdated
    | ChunkStart
    | ChunkCancel
    | ChunkAlive
    | ChunkDone
)
# What reaches a connection's channel about an operation it listens to.
OperationEvent = OperationProgress | OperationLog | OperationFinished | OperationAsking

_TYPES: dict[str, type[ClusterMessage]] = {
    kind.TYPE: kind
    for kind in (
        OperationStart,
        OperationCancel,
        OperationAnswer,
        OperationAttach,
        OperationDetach,
        OperationProgress,
        OperationLog,
        OperationFinished,
        OperationAsking,
        Broadcast,
        AccessRevoked,
        TenantChanged,
        HttpSessionMessage,
        HttpSessionEnded,
        HttpSessionSubscribed,
        HttpStreamEvent,
        RunWatch,
        RunUnwatch,
        RunUpdated,
        ChunkStart,
        ChunkCancel,
        ChunkAlive,
        ChunkDone,
    )
}


def decode_message(message: Message) -> ClusterMessage:
    """The typed message a channel-layer message is (MalformedMessage for anything else)."""
    kind = _TYPES.get(str(message.get("type")))
    if kind is None:
        raise MalformedMessage(f"unknown message type {message.get('type')!r}")
    return kind.decode(message)


def queued_snapshot(request: "CallRequest", runner: "OperationRunner") -> dict[str, Any]:
    """The history row of a call that is about to be started or handed to a worker."""
    return runner.operation_for(request).snapshot()
