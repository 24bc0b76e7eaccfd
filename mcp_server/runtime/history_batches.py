"""The pipe between the event loop's process and the history writer process: a numbered
`Batch` of states and item errors, and its encoding (JSON by orjson, a pickle for what JSON
cannot carry). Both sides import it; the writer process only once Django is set up."""

import pickle
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from mcp_server.operations.store import Snapshot

# How long the event loop's process waits for the writer to drain, and the writer for its
# database at exit.
DRAIN_TIMEOUT = 30.0
# The first byte of a batch on the pipe: how the rest is encoded.
_JSON, _PICKLE = b"j", b"p"
_DATETIME_FIELDS = ("queued_at", "started_at", "finished_at", "heartbeat_at")


@dataclass
class Batch:
    """What one send carried: the latest states, item errors and adopted operations."""

    seq: int
    snapshots: list[Snapshot]
    errors: list[dict[str, Any]]
    adopted: list[UUID]
    limits: dict[str, int] = field(default_factory=dict)

    def rows(self) -> int:
        """States and item errors in the batch (what the queue bound counts)."""
        return len(self.snapshots) + len(self.errors)


def encode_batch(batch: Batch) -> bytes:
    """A batch as bytes for the pipe: JSON by orjson (in C, the common case) or, for values
    JSON cannot carry as they are (a lone surrogate, a non-string key), a pickle."""
    try:
        return _JSON + orjson.dumps(
            {
                "seq": batch.seq,
                # The duration is finished_at - queued_at: worked out again on the other side.
                "snapshots": batch.snapshots,
                "errors": batch.errors,
                "adopted": batch.adopted,
                "limits": batch.limits,
            },
            default=_no_duration,
        )
    except TypeError:
        return _PICKLE + pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)


def _no_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return None
    raise TypeError(type(value).__name__)


def decode_batch(data: bytes) -> Batch:
    """The batch `encode_batch` made."""
    if data[:1] == _PICKLE:
        batch: Batch = pickle.loads(data[1:])
        return batch
    raw = orjson.loads(data[1:])
    snapshots = [_snapshot(row) for row in raw["snapshots"]]
    errors = [
        {**row, "operation_id": UUID(row["operation_id"]), "created_at": _when(row["created_at"])}
        for row in raw["errors"]
    ]
    adopted = [UUID(key) for key in raw["adopted"]]
    return Batch(raw["seq"], snapshots, errors, adopted, raw["limits"])


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _snapshot(row: dict[str, Any]) -> Snapshot:
    row["id"] = UUID(row["id"])
    for name in _DATETIME_FIELDS:
        row[name] = _when(row[name])
    end = row["finished_at"]
    row["duration"] = end - row["queued_at"] if end is not None else None
    return row


def history_caps() -> dict[str, int]:
    """The history caps in settings (sent with every batch: tests change them)."""
    from django.conf import settings

    return {
        "MCP_HISTORY_MAX_ARGUMENTS_BYTES": settings.MCP_HISTORY_MAX_ARGUMENTS_BYTES,
        "MCP_HISTORY_MAX_RESULT_BYTES": settings.MCP_HISTORY_MAX_RESULT_BYTES,
    }
