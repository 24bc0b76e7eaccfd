"""The messages of a fan-out chunk (`ctx.fan_out`): its start on a worker and its end (entries
of the dispatch streams' chunk lane and its reply lists), and its cancel (on the channel
layer); encoded as cluster/messages.py describes."""

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from mcp_server.cluster.messages import MalformedMessage, Message, as_optional_int

# To a worker, through the chunk lane (cluster/dispatch.py); a chunk's cancel to RUNNERS_GROUP;
# its end to the reply list of the process whose call fanned it out.
CHUNK_START = "chunk.start"
CHUNK_CANCEL = "chunk.cancel"
CHUNK_DONE = "chunk.done"


def _pairs(value: Any) -> list[tuple[int, Any]]:
    if not isinstance(value, list):
        raise MalformedMessage("chunk.done needs lists of [position, value]")
    pairs = []
    for pair in value:
        if not isinstance(pair, list | tuple) or len(pair) != 2 or as_optional_int(pair[0]) is None:
            raise MalformedMessage(f"not a [position, value] pair: {pair!r}")
        pairs.append((pair[0], pair[1]))
    return pairs


@dataclass(frozen=True, slots=True)
class ChunkStart:
    """Hands one fan-out chunk to a worker; its end goes to the reply list `reply_to`."""

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
        """The message as it travels (msgpack)."""
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
        index, start = as_optional_int(message.get("index")), as_optional_int(message.get("start"))
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
        """The message as it travels (msgpack)."""
        return {"type": self.TYPE, "chunk_ids": list(self.chunk_ids)}

    @classmethod
    def decode(cls, message: Message) -> Self:
        """The typed message (MalformedMessage when it is not one)."""
        ids = message.get("chunk_ids")
        if not isinstance(ids, list) or not all(isinstance(key, str) for key in ids):
            raise MalformedMessage("chunk.cancel needs a list of chunk ids")
        return cls(chunk_ids=tuple(ids))


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
        """The message as it travels (msgpack)."""
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
