"""Query-string filters of the runs list (django-filter); invalid values answer 400."""

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django_filters.fields import IsoDateTimeField, RangeField
from django_filters.widgets import DateRangeWidget
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from mcp_server.models import Operation, OperationStatus

_MAX_ID = 2**63 - 1


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(django_filters.NumberFilter):
    """A whole number (NumberFilter accepts decimals)."""

    field_class = forms.IntegerField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, given to the database in UTC; one that UTC cannot hold is invalid.

    "9999-12-31T23:00:00-23:00" is year 10000 in UTC: converting it overflows (SQLite), and
    PostgreSQL refuses offsets beyond 15:59. In UTC the database never converts.
    """

    def to_python(self, value: Any) -> datetime | None:
        """The time in UTC, or the field's "invalid" error."""
        parsed: datetime | None = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class UtcIsoDateTimeRangeField(RangeField):
    """A range of two UtcIsoDateTimeFields (`<name>_after`, `<name>_before`)."""

    widget = DateRangeWidget

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__((UtcIsoDateTimeField(), UtcIsoDateTimeField()), *args, **kwargs)


class UtcIsoDateTimeFromToRangeFilter(django_filters.IsoDateTimeFromToRangeFilter):
    """IsoDateTimeFromToRangeFilter whose bounds reach the database in UTC."""

    field_class = UtcIsoDateTimeRangeField


class OperationFilter(django_filters.FilterSet):
    """Filters of GET /api/runs/: tool, status, created/finished ranges, user, text search."""

    tool = django_filters.CharFilter(field_name="tool", max_length=128, help_text="Tool name.")
    status = django_filters.MultipleChoiceFilter(
        choices=OperationStatus.choices, help_text="One or more statuses (repeat the parameter)."
    )
    created = UtcIsoDateTimeFromToRangeFilter(
        field_name="queued_at",
        help_text="Queued at or after `created_after` and at or before `created_before` (ISO).",
    )
    finished = UtcIsoDateTimeFromToRangeFilter(
        field_name="finished_at",
        help_text="Finished at or after `finished_after` and at or before `finished_before`.",
    )
    user = IntegerFilter(
        field_name="user_id",
        min_value=1,
        max_value=_MAX_ID,
        help_text="User id (useful to tenant admins).",
    )
    username = django_filters.CharFilter(
        field_name="user__username", max_length=150, help_text="Username (for tenant admins)."
    )
    q = django_filters.CharFilter(
        method="search",
        max_length=200,
        help_text="Text contained in the arguments (as JSON) or the progress message.",
    )

    class Meta:
        model = Operation
        fields: list[str] = []

    def search(self, queryset: QuerySet[Operation], name: str, value: str) -> QuerySet[Operation]:
        """Runs whose arguments (as JSON text) or message contain `value`, case-insensitively."""
        if not value:
            return queryset
        return queryset.annotate(arguments_text=Cast("arguments", output_field=TextField())).filter(
            Q(arguments_text__icontains=value) | Q(message__icontains=value)
        )
