"""Read-only admin of operation history: fast lists on large tables, a cancel action, logs."""

import json
from collections import Counter
from datetime import timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from mcp_server.api.cancellation import CancelOutcome, operation_cancel
from mcp_server.api.error_log import error_log_response
from mcp_server.models import ACTIVE_ROWS, Operation, OperationError
from mcp_server.operations.lifecycle import TERMINAL_STATUSES
from mcp_server.selectors import operation_errors
from mcp_server.tools.registry import registry

# Item errors shown on an operation's page; the rest are a link away.
INLINE_ERROR_LIMIT = 50
# Larger JSON values are cut on the page (the API has them whole).
PRETTY_JSON_LIMIT = 100_000


class EstimatedCountPaginator(Paginator):
    """Exact counts, except for an unfiltered large table on PostgreSQL: the planner's estimate.

    COUNT(*) over millions of rows is a full scan on PostgreSQL; pg_class.reltuples is free
    and close enough to number the pages of an unfiltered list.
    """

    estimate_threshold = 100_000

    @cached_property
    def count(self) -> int:
        """The number of rows, estimated for an unfiltered list of a large PostgreSQL table."""
        rows = self.object_list
        if isinstance(rows, QuerySet) and not rows.query.where:
            estimate = _estimated_rows(rows)
            if estimate is not None and estimate >= self.estimate_threshold:
                return estimate
        return super().count


def _estimated_rows(rows: QuerySet[Any]) -> int | None:
    """pg_class.reltuples of the table, or None elsewhere or before the first ANALYZE."""
    connection = connections[rows.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(rows.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


class ToolListFilter(admin.SimpleListFilter):
    """Tool names from the registry, so the filter never scans the table for distinct values."""

    title = "tool"
    parameter_name = "tool"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """Every registered tool."""
        return sorted((tool.name, tool.name) for tool in registry)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Operations of the chosen tool."""
        return queryset.filter(tool=self.value()) if self.value() else queryset


def _pretty_json(value: Any) -> SafeString:
    if value is None:
        return format_html("<em>{}</em>", "none")
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > PRETTY_JSON_LIMIT:
        text = text[:PRETTY_JSON_LIMIT] + "\n… (cut; the API returns the whole value)"
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)


def _duration_text(duration: timedelta | None) -> str:
    if duration is None:
        return "—"
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ReadOnlyAdminMixin:
    """History cannot be added, changed or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: pages are read-only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never."""
        return False


class OperationErrorInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The first item errors of an operation (OperationAdmin limits how many are loaded)."""

    model = OperationError
    fields = ("item", "message", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = f"item errors (the first {INLINE_ERROR_LIMIT})"


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Operation history: list, filters, read-only detail with its item errors, cancel."""

    list_display = (
        "short_id",
        "tool",
        "status",
        "user",
        "tenant",
        "progress_percent",
        "duration_text",
        "queued_at",
    )
    list_display_links = ("short_id",)
    list_filter = ("status", ToolListFilter, "is_task", "tenant")
    list_select_related = ("user", "tenant")
    date_hierarchy = "queued_at"
    search_fields = ("tool", "user__username")
    search_help_text = "An operation id, a tool name or a username."
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100
    actions = ("cancel_operations",)
    inlines = (OperationErrorInline,)
    fieldsets = (
        (None, {"fields": ("id", "tenant", "user", "tool", "status", "message")}),
        (
            "Progress and timings",
            {
                "fields": (
                    "progress",
                    "total",
                    "progress_percent",
                    "queued_at",
                    "started_at",
                    "finished_at",
                    "duration_text",
                )
            },
        ),
        ("Arguments", {"fields": ("arguments_pretty",)}),
        (
            "Outcome",
            {
                "fields": (
                    "input_requests_pretty",
                    "result_pretty",
                    "error",
                    "error_count",
                    "error_log_links",
                )
            },
        ),
        (
            "Execution",
            {
                "classes": ("collapse",),
                "fields": (
                    "connection_id",
                    "request_id",
                    "is_task",
                    "task_ttl",
                    "runner",
                    "heartbeat_at",
                    "cancel_requested",
                ),
            },
        ),
    )
    readonly_fields = (
        "id",
        "tenant",
        "user",
        "tool",
        "status",
        "message",
        "progress",
        "total",
        "progress_percent",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_text",
        "arguments_pretty",
        "input_requests_pretty",
        "result_pretty",
        "error",
        "error_count",
        "error_log_links",
        "connection_id",
        "request_id",
        "is_task",
        "task_ttl",
        "runner",
        "heartbeat_at",
        "cancel_requested",
    )

    @admin.display(description="id")
    def short_id(self, operation: Operation) -> str:
        """The first characters of the id (search takes the whole id)."""
        return str(operation.pk)[:8]

    @admin.display(description="progress")
    def progress_percent(self, operation: Operation) -> str:
        """Progress as a percentage, when the total is known."""
        if not operation.total:
            return "—"
        return f"{min(operation.progress / operation.total, 1.0) * 100:.0f} %"

    @admin.display(description="duration", ordering="duration")
    def duration_text(self, operation: Operation) -> str:
        """Queued-to-finished time."""
        return _duration_text(operation.duration)

    @admin.display(description="arguments")
    def arguments_pretty(self, operation: Operation) -> SafeString:
        """The arguments as indented JSON."""
        return _pretty_json(operation.arguments)

    @admin.display(description="waiting for answers to")
    def input_requests_pretty(self, operation: Operation) -> SafeString:
        """A tasks-extension task's open questions to its client (it is running, and
        input_required on tasks/get), as indented JSON; the status input_required is a
        2026-07-28 call that ended by asking, never a task."""
        if not operation.input_requests:
            return format_html("{}", "Nothing.")
        return _pretty_json(operation.input_requests)

    @admin.display(description="result")
    def result_pretty(self, operation: Operation) -> SafeString:
        """The result summary as indented JSON."""
        return _pretty_json(operation.result_summary)

    @admin.display(description="item error log")
    def error_log_links(self, operation: Operation) -> SafeString:
        """Links to every item error (paginated list) and to the JSON download."""
        if not operation.error_count:
            return format_html("{}", "No item errors.")
        listing = reverse("admin:mcp_server_operationerror_changelist")
        download = reverse("admin:mcp_server_operation_errors_download", args=[operation.pk])
        shown = min(operation.error_count, INLINE_ERROR_LIMIT)
        return format_html(
            '{} item errors; the first {} are below. <a href="{}?operation__id__exact={}">'
            'All item errors</a> · <a href="{}">Download errors.json</a>',
            operation.error_count,
            shown,
            listing,
            operation.pk,
            download,
        )

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Any, inline: Any, prefix: str
    ) -> dict[str, Any]:
        """Load only the first INLINE_ERROR_LIMIT item errors, however long the log."""
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, OperationErrorInline) and obj is not None:
            first = operation_errors(operation_id=obj.pk).values("pk")[:INLINE_ERROR_LIMIT]
            kwargs["queryset"] = OperationError.objects.filter(pk__in=first).order_by("id")
        return kwargs

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Operation], search_term: str
    ) -> tuple[QuerySet[Operation], bool]:
        """An id finds that operation by primary key; other text searches tool and username."""
        term = search_term.strip()
        try:
            operation_id = UUID(term)
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(pk=operation_id)), False

    def get_urls(self) -> list[URLPattern]:
        """The model's admin URLs plus the errors.json download."""
        download = path(
            "<path:object_id>/errors.json",
            self.admin_site.admin_view(self.errors_download_view),
            name="mcp_server_operation_errors_download",
        )
        return [download, *super().get_urls()]

    def errors_download_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        """Stream an operation's whole item-error log as a JSON file."""
        try:
            operation = Operation.objects.filter(pk=UUID(object_id)).first()
        except ValueError:
            operation = None
        if operation is None:
            raise Http404("No such operation.")
        if not self.has_view_permission(request, operation):
            raise PermissionDenied
        return error_log_response(request, operation.pk)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Staff who may change operations may cancel them (the pages stay read-only)."""
        return request.user.has_perm("mcp_server.change_operation")

    @admin.action(description="Cancel selected running operations", permissions=["cancel"])
    def cancel_operations(self, request: HttpRequest, queryset: QuerySet[Operation]) -> None:
        """Cancel the selected queued or running operations, wherever they run."""
        pending = queryset.filter(ACTIVE_ROWS)
        outcomes = Counter(
            operation_cancel(operation=operation)
            for operation in pending.select_related(None).only("id", "status", "is_task").iterator()
        )
        finished = queryset.filter(status__in=TERMINAL_STATUSES).count()
        cancelled = outcomes[CancelOutcome.CANCELLING]
        if cancelled:
            self.message_user(request, f"Cancelling {cancelled} operation(s).", messages.SUCCESS)
        if finished:
            self.message_user(request, f"{finished} operation(s) had already finished.")


@admin.register(OperationError)
class OperationErrorAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every item error, paginated; reached from an operation's page, filtered to it."""

    list_display = ("id", "operation_link", "item", "message_text", "created_at")
    list_display_links = None
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100

    @admin.display(description="operation")
    def operation_link(self, error: OperationError) -> SafeString:
        """A link to the operation (from the foreign key alone: no join, no extra query)."""
        url = reverse("admin:mcp_server_operation_change", args=[error.operation_id])
        return format_html('<a href="{}">{}</a>', url, str(error.operation_id)[:8])

    @admin.display(description="message")
    def message_text(self, error: OperationError) -> str:
        """The message, cut to a line."""
        return error.message if len(error.message) <= 200 else error.message[:199] + "…"
