"""The registry of every typed cluster message: `decode_message` turns what the channel layer
carries into the typed value its `type` names."""

from mcp_server.cluster.chunk_messages import ChunkCancel, ChunkDone, ChunkStart
from mcp_server.cluster.messages import (
    MalformedMessage,
    Message,
    OperationAnswer,
    OperationAsking,
    OperationAttach,
    OperationCancel,
    OperationDetach,
    OperationFinished,
    OperationLog,
    OperationProgress,
    OperationStart,
)
from mcp_server.cluster.session_messages import (
    AccessRevoked,
    Broadcast,
    HttpSessionEnded,
    HttpSessionMessage,
    HttpSessionSubscribed,
    HttpStreamEvent,
    RunUnwatch,
    RunUpdated,
    RunWatch,
    TenantChanged,
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
    | ChunkDone
)

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
        ChunkDone,
    )
}


def decode_message(message: Message) -> ClusterMessage:
    """The typed message a channel-layer message is (MalformedMessage for anything else)."""
    kind = _TYPES.get(str(message.get("type")))
    if kind is None:
        raise MalformedMessage(f"unknown message type {message.get('type')!r}")
    return kind.decode(message)
