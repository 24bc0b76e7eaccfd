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
(psycopg formats the rows in C; JSON and UUIDs go as text, which COPY's text format takes for
any type, so no per-value dumper runs in Python). The common values take the cheapest exact
path: an aware UTC datetime through orjson, ASCII text within its caps as it is.
"""

import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.duration import duration_microseconds

from mcp_server.history_values import history_json, history_text

Adapter = Callable[[Any], Any]
# What orjson writes after an aware UTC datetime's time: its offset and the closing quote.
_UTC_SUFFIX = len('+00:00"')


def _identity(value: Any) -> Any:
    return value


def _encoded(text: str) -> str:
    return text


def _sqlite_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is UTC:
        # What timezone.now() gives, the common case: orjson writes it as str() does, with a
        # "T" for the space (microseconds left out when 0 alike) in a quarter of str()'s time.
        return orjson.dumps(value)[1:-_UTC_SUFFIX].replace(b"T", b" ").decode()
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ")


def _json_adapter(connection: BaseDatabaseWrapper, limit: int | None, *, copy: bool) -> Adapter:
    if copy:
        # COPY's text format takes the JSON text as it is: no wrapper, no dumper per value.
        return lambda v: None if v is None else history_json(v, limit)
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import Jsonb

        # Encoded here with orjson (checked and capped once); psycopg sends the text as is.
        return lambda v: None if v is None else Jsonb(history_json(v, limit), dumps=_encoded)
    # SQLite (and others) store JSON as text.
    return lambda v: None if v is None else history_json(v, limit)


def _text_adapter(max_chars: int | None, max_bytes: int | None) -> Adapter:
    # ASCII without U+0000 needs no escape and is as many bytes as characters: stored as it is
    # when within both caps (every text of a plain call: one length check and two C scans).
    fits = min(sys.maxsize if cap is None else cap for cap in (max_chars, max_bytes))

    def adapt(value: str | None) -> str | None:
        if value is None or (len(value) <= fits and value.isascii() and "\x00" not in value):
            return value
        return history_text(value, max_chars=max_chars, max_bytes=max_bytes)

    return adapt


def _adapter(
    field: "models.Field[Any, Any]",
    connection: BaseDatabaseWrapper,
    limit: int | None,
    *,
    copy: bool,
) -> Adapter:
    features = connection.features
    if isinstance(field, models.JSONField):
        return _json_adapter(connection, limit, copy=copy)
    if isinstance(field, models.CharField | models.TextField):
        return _text_adapter(field.max_length, limit)
    if isinstance(field, models.DateTimeField):
        if connection.vendor == "sqlite":  # stored as naive UTC text, as Django writes it
            return _sqlite_datetime
        return _identity
    if isinstance(field, models.UUIDField) and (copy or not features.has_native_uuid_field):
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
        *,
        copy: bool = False,
    ) -> None:
        # copy: values for PostgreSQL's COPY (text format), where text stands for any type.
        adapters = [_adapter(f, connection, limits.get(f.attname), copy=copy) for f in fields]
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
        self._copies = connection.vendor == "postgresql"
        self.values = ColumnValues(fields, connection, limits or {})
        # PostgreSQL's COPY (text format) for batches; one row is one INSERT, a round trip
        # fewer (a worker writes each plain call's row alone before its end is announced).
        self.copy_values = (
            ColumnValues(fields, connection, limits or {}, copy=True) if self._copies else None
        )
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        columns = ", ".join(quote(str(f.column)) for f in fields)
        self._copy = f"COPY {table} ({columns}) FROM STDIN"
        self._insert = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
        self._connection = connection

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` (in the caller's transaction, if any: one statement is its own)."""
        if not rows:
            return
        with self._connection.cursor() as cursor:
            if len(rows) == 1:
                cursor.execute(self._insert, self.values(rows[0]))
                return
            if self.copy_values is None:
                # An iterator (the stubs say Sequence): each row's values are built as SQLite
                # reaches it, so the GIL is never held for a whole batch.
                cursor.executemany(self._insert, map(self.values, rows))  # type: ignore[arg-type]
                return
            # Django's wrapper hands `copy` to psycopg's cursor; errors still become Django's.
            with self._connection.wrap_database_errors, cursor.copy(self._copy) as copy:
                for row in rows:
                    copy.write_row(self.copy_values(row))


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
