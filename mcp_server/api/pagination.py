"""Cursor pagination: keyset over (sort value, id) for runs; DRF's cursor for append-only logs."""

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from django.db.models import F, Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


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


def _decode_value(raw: Any, key: "SortKey") -> Any:
    if raw is None and key.nullable:
        return None
    if key.kind == "duration" and isinstance(raw, int) and not isinstance(raw, bool):
        return timedelta(microseconds=raw)
    if key.kind == "datetime" and isinstance(raw, str):
        parsed = parse_datetime(raw)
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
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
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return DEFAULT_PAGE_SIZE
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            message = f"A whole number from 1 to {MAX_PAGE_SIZE}."
            raise ValidationError({self.page_size_query_param: [message]})
        return int(raw)

    def _decode_cursor(self, request: Request, ordering: str) -> Cursor | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
            if data["o"] != ordering or not isinstance(data["r"], bool):
                raise ValueError("cursor of another ordering")
            cursor = Cursor(
                ordering=ordering,
                value=_decode_value(data["v"], self.orderings[ordering]),
                pk=str(UUID(data["k"])),
                reverse=data["r"],
            )
        except (ValueError, TypeError, KeyError, UnicodeEncodeError, binascii.Error):
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from None
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
    """DRF's cursor pagination, answering a bad cursor with 400 (like the runs list), not 404."""

    def decode_cursor(self, request: Request) -> Any:
        """The cursor of the request, or a 400 field error."""
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from None

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """OpenAPI shape of a page."""
        return _page_schema(schema)


class LogCursorPagination(StrictCursorPagination):
    """Item errors in logging order (by id), with cursors; no COUNT."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class TokenCursorPagination(StrictCursorPagination):
    """A user's tokens, newest first."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


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
