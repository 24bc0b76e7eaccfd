"""A lean batch INSERT for operation rows, the one write every tool call makes.

`bulk_create` spends ~60 µs of Python per row preparing values (field by field, with time
zone checks) on the thread that shares the GIL with the event loop; at thousands of calls per
second that was a quarter of the server's CPU. Rows here come from the runtime's snapshots,
whose types are known (aware UTC datetimes, UUIDs, JSON-able values), so each column gets the
same adaptation Django would apply, chosen once per connection instead of per value.
"""

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.duration import duration_microseconds

Adapter = Callable[[Any], Any]
_ROWS_PER_STATEMENT = 500


def _identity(value: Any) -> Any:
    return value


def _sqlite_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ")


def _adapter(field: "models.Field[Any, Any]", connection: BaseDatabaseWrapper) -> Adapter:
    features = connection.features
    if isinstance(field, models.JSONField):
        if connection.vendor == "sqlite":  # stored as JSON text; orjson is ~10x json.dumps
            return lambda v: None if v is None else orjson.dumps(v).decode()
        encoder = field.encoder
        return lambda v: None if v is None else connection.ops.adapt_json_value(v, encoder)
    if isinstance(field, models.DateTimeField):
        if connection.vendor == "sqlite":  # stored as naive UTC text, as Django writes it
            return _sqlite_datetime
        return _identity
    if isinstance(field, models.UUIDField) and not features.has_native_uuid_field:
        return lambda v: None if v is None else v.hex
    if isinstance(field, models.DurationField) and not features.has_native_duration_field:
        return lambda v: None if v is None else duration_microseconds(v)
    return _identity


class RowInserter:
    """Inserts dicts of field values (keyed by attname) into a model's table in chunks."""

    def __init__(
        self,
        model: type[models.Model],
        connection: BaseDatabaseWrapper,
        *,
        leave_out: Collection[str] = (),
    ) -> None:
        # Columns left out take their database defaults.
        fields = [f for f in model._meta.concrete_fields if f.attname not in leave_out]
        self.attnames = [f.attname for f in fields]
        self._adapters = [_adapter(f, connection) for f in fields]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(str(f.column)) for f in fields)
        self._head = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES "
        self._row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        self._connection = connection

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` (inside the caller's transaction)."""
        pairs = list(zip(self.attnames, self._adapters, strict=True))
        with self._connection.cursor() as cursor:
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[start : start + _ROWS_PER_STATEMENT]
                params = [adapt(row[name]) for row in chunk for name, adapt in pairs]
                cursor.execute(self._head + ", ".join([self._row] * len(chunk)), params)
