"""Cursor pagination: keyset over (sort value, id) for runs; DRF's cursor for append-only logs."""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from django.db.models import F, Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# What a 64-bit integer column (ids, durations in microseconds) can hold.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
INVALID_CURSOR = "Invalid cursor."


@dataclass(frozen=True, slots=True)
class SortKey:
    """A public ordering name and the model field it sorts on, ties broken by primary key."""

    field: str
    descending: bool
    kind: str = "datetime"
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a listing: the sort value and primary key of a row, and the direction."""

    ordering: str
    value: Any
    pk: str
    reverse: bool


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    return value


def page_size_from(raw: str | None, *, default: int, maximum: int, name: str) -> int:
    """The page size a query asked for: ASCII digits from 1 to `maximum`, else a 400."""
    if raw is None:
        return default
    # str.isdigit() also accepts "²" and "٣", which int() refuses or reads as another digit.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= maximum):
        raise ValidationError({name: [f"A whole number from 1 to {maximum}."]})
    return int(raw)


def _decode_value(raw: Any, key: "SortKey") -> Any:
    if raw is None and key.nullable:
        return None
    if key.kind == "duration" and type(raw) is int and BIGINT_MIN <= raw <= BIGINT_MAX:
        return timedelta(microseconds=raw)
    if key.kind == "datetime" and isinstance(raw, str):
        parsed = parse_datetime(raw)
        if parsed is not None and parsed.tzinfo is not None:
            # In UTC, so the database never converts (and cannot overflow or refuse the offset).
            return parsed.astimezone(UTC)
    raise ValueError("bad cursor value")


def _strictly_after(key: SortKey, value: Any, pk: Any, *, descending: bool, nulls_last: bool) -> Q:
    """Rows strictly after (value, pk) in an order on (key.field, pk), both `descending`."""
    field = key.field
    cmp = "lt" if descending else "gt"
    if value is None:
        same_null = Q(**{f"{field}__isnull": True, f"pk__{cmp}": pk})
        return same_null if nulls_last else Q(**{f"{field}__isnull": False}) | same_null
    if not key.nullable:
        # `field <= v AND (field < v OR pk < k)`: the first term is an index range.
        inclusive = f"{field}__{cmp}e"
        return Q(**{inclusive: value}) & (Q(**{f"{field}__{cmp}": value}) | Q(**{f"pk__{cmp}": pk}))
    after = Q(**{f"{field}__{cmp}": value}) | Q(**{field: value, f"pk__{cmp}": pk})
    return after | Q(**{f"{field}__isnull": True}) if nulls_last else after


class KeysetCursorPagination(BasePagination):
    """Opaque cursors over a stable order (value, uuid): no COUNT, no OFFSET, constant queries."""

    orderings: dict[str, SortKey] = {
        "-created": SortKey("queued_at", descending=True),
        "created": SortKey("queued_at", descending=False),
        "-duration": SortKey("duration", descending=True, kind="duration", nullable=True),
        "duration": SortKey("duration", descending=False, kind="duration", nullable=True),
    }
    default_ordering = "-created"
    cursor_query_param = "cursor"
    ordering_query_param = "ordering"
    page_size_query_param = "page_size"

    def _ordering_name(self, request: Request) -> str:
        name = request.query_params.get(self.ordering_query_param) or self.default_ordering
        if name not in self.orderings:
            choices = ", ".join(self.orderings)
            raise ValidationError({self.ordering_query_param: [f"Choose one of: {choices}."]})
        return name

    def _page_size(self, request: Request) -> int:
        return page_size_from(
            request.query_params.get(self.page_size_query_param),
            default=DEFAULT_PAGE_SIZE,
            maximum=MAX_PAGE_SIZE,
            name=self.page_size_query_param,
        )

    def _decode_cursor(self, request: Request, ordering: str) -> Cursor | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
            if not isinstance(data, dict) or data.get("o") != ordering:
                raise ValueError("not a cursor of this ordering")
            if not isinstance(data.get("r"), bool) or not isinstance(data.get("k"), str):
                raise ValueError("cursor members of the wrong kind")
            cursor = Cursor(
                ordering=ordering,
                value=_decode_value(data.get("v"), self.orderings[ordering]),
                pk=str(UUID(data["k"])),
                reverse=data["r"],
            )
        except (ValueError, OverflowError, UnicodeEncodeError, binascii.Error):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        return cursor

    def _encode_cursor(self, ordering: str, row: Any, *, reverse: bool) -> str:
        key = self.orderings[ordering]
        data = {
            "o": ordering,
            "v": _encode_value(getattr(row, key.field)),
            "k": str(row.pk),
            "r": reverse,
        }
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode("ascii")

    def _order(self, queryset: QuerySet[Any], key: SortKey, *, reverse: bool) -> QuerySet[Any]:
        descending = key.descending != reverse
        column = F(key.field)
        if key.nullable:
            # Nulls (unfinished runs) come last in the forward order, whichever the direction.
            nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
            term = column.desc(**nulls) if descending else column.asc(**nulls)
        else:
            term = column.desc() if descending else column.asc()
        return queryset.order_by(term, "-pk" if descending else "pk")

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        """One page of rows: page_size + 1 are fetched to learn whether another page follows."""
        self.request = request
        self.ordering = self._ordering_name(request)
        size = self._page_size(request)
        cursor = self._decode_cursor(request, self.ordering)
        key = self.orderings[self.ordering]
        reverse = cursor.reverse if cursor else False
        queryset = self._order(queryset, key, reverse=reverse)
        if cursor is not None:
            descending = key.descending != reverse
            queryset = queryset.filter(
                _strictly_after(
                    key, cursor.value, cursor.pk, descending=descending, nulls_last=not reverse
                )
            )
        rows = list(queryset[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        if reverse:
            rows.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, cursor is not None
        self.page = rows
        return rows

    def _link(self, *, reverse: bool) -> str | None:
        url = self.request.build_absolute_uri()
        if not self.page:
            return None
        row = self.page[0] if reverse else self.page[-1]
        return replace_query_param(
            url, self.cursor_query_param, self._encode_cursor(self.ordering, row, reverse=reverse)
        )

    def get_next_link(self) -> str | None:
        """The URL of the following page, or None."""
        return self._link(reverse=False) if self.has_next else None

    def get_previous_link(self) -> str | None:
        """The URL of the preceding page, or None; the first page is the URL without a cursor."""
        if not self.has_previous:
            return None
        return self._link(reverse=True) or remove_query_param(
            self.request.build_absolute_uri(), self.cursor_query_param
        )

    def get_paginated_response(self, data: Any) -> Response:
        """The page with its neighbours' links."""
        return Response(
            {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """OpenAPI shape of a page."""
        return _page_schema(schema)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """OpenAPI query parameters: cursor, page_size and ordering."""
        return [
            _cursor_parameter(self.cursor_query_param),
            _page_size_parameter(self.page_size_query_param),
            {
                "name": self.ordering_query_param,
                "required": False,
                "in": "query",
                "description": "Sort order: created (queued time) or duration, '-' for descending.",
                "schema": {"type": "string", "enum": list(self.orderings)},
            },
        ]


class StrictCursorPagination(CursorPagination):
    """DRF's cursor pagination answering a bad cursor or page size with 400, like the runs list.

    DRF puts a cursor's position into the query as it came; `position_field` (the kind of the
    first ordering field) checks it first, so a position of the wrong kind is a 400, not a
    database error.
    """

    page_size_query_param = "page_size"
    position_field: serializers.Field[Any, Any, Any, Any] = serializers.IntegerField(
        min_value=BIGINT_MIN, max_value=BIGINT_MAX
    )

    def decode_cursor(self, request: Request) -> Any:
        """The cursor of the request, or a 400 field error."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        if cursor is None or cursor.position is None:
            return cursor
        try:
            position = self.position_field.run_validation(cursor.position)
        except serializers.ValidationError:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        # As DRF writes positions (str of the row's value), so its comparisons still hold; the
        # stubs type the position as int, DRF itself keeps the text of the query string.
        return cursor._replace(position=str(position))  # type: ignore[arg-type]

    def get_page_size(self, request: Request) -> int:
        """The page size asked for (1 to max_page_size), or a 400 field error."""
        return page_size_from(
            request.query_params.get(self.page_size_query_param),
            default=self.page_size or DEFAULT_PAGE_SIZE,
            maximum=self.max_page_size or MAX_PAGE_SIZE,
            name=self.page_size_query_param,
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """OpenAPI shape of a page."""
        return _page_schema(schema)


class LogCursorPagination(StrictCursorPagination):
    """Item errors in logging order (by id), with cursors; no COUNT."""

    ordering = "id"
    page_size = 100
    max_page_size = 1000


class TokenCursorPagination(StrictCursorPagination):
    """A user's tokens, newest first."""

    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 200
    position_field = serializers.DateTimeField()


def _page_schema(schema: dict[str, Any]) -> dict[str, Any]:
    link = {"type": "string", "format": "uri", "nullable": True}
    return {
        "type": "object",
        "required": ["next", "previous", "results"],
        "properties": {"next": link, "previous": link, "results": schema},
    }


def _cursor_parameter(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "required": False,
        "in": "query",
        "description": "Opaque position from a previous page's next/previous link.",
        "schema": {"type": "string"},
    }


def _page_size_parameter(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "required": False,
        "in": "query",
        "description": f"Rows per page (1 to {MAX_PAGE_SIZE}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    }
