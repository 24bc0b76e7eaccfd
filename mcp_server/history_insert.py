"""A lean batch INSERT for operation rows, the one write every tool call makes.

`bulk_create` spends ~60 µs of Python per row preparing values (field by field, with time
zone checks) on the thread that shares the GIL with the event loop; at thousands of calls per
second that was a quarter of the server's CPU. Rows here come from the runtime's snapshots,
whose types are known (aware UTC datetimes, UUIDs, JSON-able values), so each column gets the
same adaptation Django would apply, chosen once per connection instead of per value. Text and
JSON values are also made storable on the way (`mcp_server.history_values`).

Only the columns that need it are adapted (the rest are taken as they are, by one
`itemgetter`), and the rows go to the database in one statement prepared once: `executemany`
of a one-row INSERT on SQLite (the sqlite3 module releases the GIL for every row it steps,
so the event loop never waits for a whole batch), `COPY ... FROM STDIN` on PostgreSQL
(psycopg formats the rows in C).
"""

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.duration import duration_microseconds

from mcp_server.history_values import history_json, history_text

Adapter = Callable[[Any], Any]
# Characters of the UTC offset that str() of an aware UTC datetime ends with ("+00:00").
_UTC_SUFFIX = len("+00:00")


def _identity(value: Any) -> Any:
    return value


def _encoded(text: str) -> str:
    return text


def _sqlite_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is UTC:  # what timezone.now() gives: the common case, one C call
        return str(value)[:-_UTC_SUFFIX]
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ")


def _json_adapter(connection: BaseDatabaseWrapper, limit: int | None) -> Adapter:
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import Jsonb

        # Encoded here with orjson (checked and capped once); psycopg sends the text as is.
        return lambda v: None if v is None else Jsonb(history_json(v, limit), dumps=_encoded)
    # SQLite (and others) store JSON as text.
    return lambda v: None if v is None else history_json(v, limit)


def _adapter(
    field: "models.Field[Any, Any]", connection: BaseDatabaseWrapper, limit: int | None
) -> Adapter:
    features = connection.features
    if isinstance(field, models.JSONField):
        return _json_adapter(connection, limit)
    if isinstance(field, models.CharField | models.TextField):
        max_chars = field.max_length
        return lambda v: v if v is None else history_text(v, max_chars=max_chars, max_bytes=limit)
    if isinstance(field, models.DateTimeField):
        if connection.vendor == "sqlite":  # stored as naive UTC text, as Django writes it
            return _sqlite_datetime
        return _identity
    if isinstance(field, models.UUIDField) and not features.has_native_uuid_field:
        return lambda v: None if v is None else v.hex
    if isinstance(field, models.DurationField) and not features.has_native_duration_field:
        return lambda v: None if v is None else duration_microseconds(v)
    return _identity


class ColumnValues:
    """The values of some fields of a row (a dict keyed by attname), in order, as the database
    takes them: only the columns that need it are adapted."""

    def __init__(
        self,
        fields: Sequence["models.Field[Any, Any]"],
        connection: BaseDatabaseWrapper,
        limits: Mapping[str, int],
    ) -> None:
        adapters = [_adapter(f, connection, limits.get(f.attname)) for f in fields]
        self._adapted = [(i, adapt) for i, adapt in enumerate(adapters) if adapt is not _identity]
        self._values_of = itemgetter(*(f.attname for f in fields))

    def __call__(self, row: Mapping[str, Any]) -> list[Any]:
        """The column values of `row`."""
        values = list(self._values_of(row))
        for i, adapt in self._adapted:
            values[i] = adapt(values[i])
        return values


class RowInserter:
    """Inserts dicts of field values (keyed by attname) into a model's table in one statement."""

    def __init__(
        self,
        model: type[models.Model],
        connection: BaseDatabaseWrapper,
        *,
        leave_out: Collection[str] = (),
        limits: Mapping[str, int] | None = None,
    ) -> None:
        # Columns left out take their database defaults; `limits` caps columns (bytes).
        fields = [f for f in model._meta.concrete_fields if f.attname not in leave_out]
        self.attnames = [f.attname for f in fields]
        self.values = ColumnValues(fields, connection, limits or {})
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        columns = ", ".join(quote(str(f.column)) for f in fields)
        self._copy = f"COPY {table} ({columns}) FROM STDIN"
        self._insert = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
        self._connection = connection

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` (inside the caller's transaction)."""
        if not rows:
            return
        with self._connection.cursor() as cursor:
            if self._connection.vendor != "postgresql":
                # An iterator (the stubs say Sequence): each row's values are built as SQLite
                # reaches it, so the GIL is never held for a whole batch.
                cursor.executemany(self._insert, map(self.values, rows))  # type: ignore[arg-type]
                return
            # Django's wrapper hands `copy` to psycopg's cursor; errors still become Django's.
            with self._connection.wrap_database_errors, cursor.copy(self._copy) as copy:
                for row in rows:
                    copy.write_row(self.values(row))


class RowUpdater:
    """Sets some columns of rows by primary key, except where a column holds one of the
    `unless` values (a status that is final): one statement, prepared once, for every row."""

    def __init__(
        self,
        model: type[models.Model],
        connection: BaseDatabaseWrapper,
        *,
        columns: Sequence[str],
        unless: tuple[str, Collection[str]],
        limits: Mapping[str, int] | None = None,
    ) -> None:
        meta = model._meta
        by_name = {f.attname: f for f in meta.concrete_fields}
        fields = [by_name[name] for name in columns]
        pk = by_name[meta.pk.attname if meta.pk is not None else "id"]
        self.values = ColumnValues([*fields, pk], connection, limits or {})
        quote = connection.ops.quote_name
        changes = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)
        guard, final = unless
        self._final = list(final)
        self._update = (
            f"UPDATE {quote(meta.db_table)} SET {changes} WHERE {quote(str(pk.column))} = %s"
            f" AND {quote(str(by_name[guard].column))} NOT IN "
            f"({', '.join(['%s'] * len(self._final))})"
        )
        self._connection = connection

    def update(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Update `rows`, in the order given (inside the caller's transaction)."""
        params = (self.values(row) + self._final for row in rows)
        with self._connection.cursor() as cursor:
            # An iterator, as in insert.
            cursor.executemany(self._update, params)  # type: ignore[arg-type]
