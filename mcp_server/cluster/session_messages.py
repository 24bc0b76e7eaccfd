"""The messages about clients' sessions rather than one run: broadcasts, access taken away
and tenants' new tool sets and limits, Streamable HTTP sessions another process holds, and
resource watches (encoded as cluster/messages.py describes)."""

from dataclasses import dataclass
from typing import Any, ClassVar, Self
from uuid import UUID

from accounts import tool_sets
from accounts.limits import TenantLimits
from mcp_server.cluster.messages import (
    MalformedMessage,
    Message,
    OperationAttach,
    as_optional_int,
    as_uuid,
)

# Every web process (one membership per process, not per connection): broadcasts go here.
WEB_GROUP = "mcp-web"
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
            tenant_id=as_optional_int(message.get("tenant_id")),
            user_id=as_optional_int(message.get("user_id")),
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
            status=as_optional_int(message.get("status")) or 403,
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
        tenant_id, limits = as_optional_int(message.get("tenant_id")), message.get("limits")
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
            id=as_uuid(message.get("id")),
            errors=message.get("errors") is True,
            ended=message.get("ended") is True,
        )
