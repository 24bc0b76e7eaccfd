"""The encoding base of the typed messages that cross processes, and the messages of one
operation's run (its start on a worker, cancel, answers, listeners, progress, logs, its end).

Every message is a frozen dataclass with one `encode()` (to the dict the channel layer
carries, its `type` being the Channels handler name) and one `decode()`; receivers call
`decode_message` (cluster/decoding.py, the registry of every type) once and work with the
typed value. The other families live in cluster/chunk_messages.py (fan-out chunks) and
cluster/session_messages.py (broadcasts, access, HTTP sessions, resource watches). All
processes of a cluster run the same build, so the keys are these modules' alone to change.

Channel layers deliver at most once and drop messages when full: nothing here is the only
record of something that must arrive. Results and terminal statuses are persisted first;
these messages are the fast path, and the receivers recover from the database when one is lost.
"""

import dataclasses
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID

from accounts import tool_sets
from accounts.principal import Principal
from config.log_context import valid_traceparent
from mcp_server.operations.lifecycle import Stop

if TYPE_CHECKING:
    from mcp_server.models import Operation
    from mcp_server.runtime.runner import CallRequest, OperationRunner

# Every process that runs operations (web processes inline, workers): cancel and attach go here.
RUNNERS_GROUP = "mcp-runners"

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

# A message as the channel layer carries it.
Message = dict[str, Any]


class MalformedMessage(ValueError):
    """A channel-layer message that does not decode to the type it names."""


def as_object(value: Any) -> dict[str, Any]:
    """`value` if it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_uuid(value: Any) -> UUID:
    """`value` as an operation id (MalformedMessage when it is not one)."""
    try:
        return UUID(str(value))
    except ValueError:
        raise MalformedMessage(f"not an operation id: {value!r}") from None


def as_moment(value: Any) -> datetime | None:
    """`value` as an ISO moment (None when it is not a string)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def as_number(value: Any) -> float | None:
    """`value` if it is a number (not a bool), else None."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def as_optional_int(value: Any) -> int | None:
    """`value` if it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Principals seen by this process's hand-offs: a connection's calls share one.
PRINCIPALS_KEPT = 4096


@functools.lru_cache(maxsize=PRINCIPALS_KEPT)
def principal_fields(principal: Principal) -> dict[str, Any]:
    """The principal as a hand-off carries it (its tool sets encoded), made once per principal:
    `dataclasses.asdict` copies deeply, ~40 µs, a quarter of a web process's CPU per call handed
    to a worker. Not to be mutated: each hand-off takes a copy."""
    fields = dataclasses.asdict(principal)
    fields.update(tool_sets.encoded(principal.enabled_tools, principal.disabled_tools))
    return fields


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
        return cls(
            id=request.operation_id,
            principal=dict(principal_fields(request.principal)),
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
            id=as_uuid(message.get("id")),
            principal=principal,
            tool=tool,
            arguments=message.get("arguments") or {},
            connection_id=message.get("connection_id") or "",
            request_id=message.get("request_id") or "",
            progress_token=message.get("progress_token"),
            queued_at=as_moment(message.get("queued_at")),
            is_task=bool(message.get("is_task")),
            task_ttl=as_optional_int(message.get("task_ttl")),
            listener=str(listener) if listener else None,
            traceparent=valid_traceparent(message.get("traceparent")),
            asks_through_task=bool(message.get("asks_through_task")),
            client_capabilities=as_object(message.get("client_capabilities")),
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
        return cls(id=as_uuid(message.get("id")), reason=Stop.decode(message))


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
        return cls(id=as_uuid(message.get("id")), responses=responses)


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
        return cls(id=as_uuid(message.get("id")), channel=channel)


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
        return cls(id=as_uuid(message.get("id")), input_requests=asked or None)


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
        progress = as_number(message.get("progress"))
        if progress is None:
            raise MalformedMessage("operation.progress needs a number")
        text = message.get("message")
        return cls(
            id=as_uuid(message.get("id")),
            progress=progress,
            total=as_number(message.get("total")),
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
            id=as_uuid(message.get("id")),
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
            id=as_uuid(message.get("id")),
            status=status if isinstance(status, str) and status else "failed",
            result=result if isinstance(result, dict) else None,
            error=error if isinstance(error, str) else "",
            progress=as_number(message.get("progress")),
            total=as_number(message.get("total")),
            finished_at=as_moment(message.get("finished_at")),
        )


# What reaches a connection's channel about an operation it listens to.
OperationEvent = OperationProgress | OperationLog | OperationFinished | OperationAsking


def queued_snapshot(request: "CallRequest", runner: "OperationRunner") -> dict[str, Any]:
    """The history row of a call that is about to be started or handed to a worker."""
    return runner.operation_for(request).snapshot()
