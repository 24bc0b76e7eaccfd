"""Reads of operation history, always scoped to the caller; the API and admin use these."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, Q, QuerySet

from accounts.models import ApiToken
from accounts.principal import Principal
from mcp_server.models import Operation, OperationError
from mcp_server.operations.lifecycle import TERMINAL_STATUSES

# Columns a list of runs never shows: they can be large, so they are not fetched.
_LIST_DEFERRED = ("result_summary", "error", "connection_id")


def operations_visible_to(*, principal: Principal) -> QuerySet[Operation]:
    """Operations the caller may see: their own, or the whole tenant's for a tenant admin."""
    queryset = Operation.objects.filter(tenant_id=principal.tenant_id)
    if not principal.is_tenant_admin:
        queryset = queryset.filter(user_id=principal.user_id)
    return queryset


def operation_list(*, principal: Principal) -> QuerySet[Operation]:
    """The caller's runs with their user loaded, without the heavy columns (one query)."""
    return (
        operations_visible_to(principal=principal)
        .select_related("user")
        .defer(*_LIST_DEFERRED, "user__password")
    )


def operation_get(*, principal: Principal, operation_id: UUID | str) -> Operation | None:
    """One run the caller may see, or None (unknown, malformed or someone else's id)."""
    try:
        key = operation_id if isinstance(operation_id, UUID) else UUID(str(operation_id))
    except ValueError:
        return None
    return operations_visible_to(principal=principal).select_related("user").filter(pk=key).first()


def operation_page(
    *, principal: Principal, after: tuple[datetime, UUID] | None, size: int
) -> list[Operation]:
    """The caller's runs newest first, after (queued_at, id) `after` (keyset), up to size + 1."""
    queryset = operation_list(principal=principal)
    if after is not None:
        queued_at, key = after
        queryset = queryset.filter(Q(queued_at__lt=queued_at) | Q(queued_at=queued_at, pk__lt=key))
    return list(queryset.order_by("-queued_at", "-id")[: size + 1])


def operation_ids_starting(*, principal: Principal, prefix: str, limit: int) -> list[str]:
    """Ids of the caller's runs that start with `prefix`, newest first, at most `limit`.

    The prefix becomes a range of ids (what it is padded to with 0s and with fs), so the
    primary key's index serves it on every database.
    """
    digits = prefix.replace("-", "").lower()
    if len(digits) > 32 or any(c not in "0123456789abcdef" for c in digits):
        return []
    low, high = UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))
    queryset = operations_visible_to(principal=principal).filter(pk__gte=low, pk__lte=high)
    ids = queryset.order_by("-queued_at", "-id").values_list("id", flat=True)[:limit]
    return [str(key) for key in ids]


def operation_errors(*, operation_id: UUID) -> QuerySet[OperationError]:
    """The item errors of one operation in the order they were logged."""
    return OperationError.objects.filter(operation_id=operation_id).order_by("id")


class PercentileCont(Aggregate):
    """PostgreSQL's `percentile_cont(f) WITHIN GROUP (ORDER BY expr)` (linear interpolation)."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, output_field=DurationField(), fraction=float(fraction))


@dataclass(frozen=True, slots=True)
class ToolStats:
    """Counts and duration percentiles of one tool over a window."""

    tool: str
    count: int
    by_status: dict[str, int]
    p50_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Counts by status and by tool, and duration percentiles per tool, over a window."""

    since: datetime
    until: datetime
    total: int
    by_status: dict[str, int]
    by_tool: list[ToolStats] = field(default_factory=list)


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear-interpolated percentile of sorted values, the same as SQL's percentile_cont."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 6)


def _duration_percentiles(
    finished: QuerySet[Operation],
) -> dict[str, tuple[float | None, float | None]]:
    """p50 and p95 duration per tool: in the database on PostgreSQL, else over sorted values."""
    if connection.vendor == "postgresql":
        rows = (
            finished.order_by()
            .values("tool")
            .annotate(p50=PercentileCont("duration", 0.5), p95=PercentileCont("duration", 0.95))
        )
        return {row["tool"]: (_seconds(row["p50"]), _seconds(row["p95"])) for row in rows}
    durations: dict[str, list[float]] = defaultdict(list)
    for tool, duration in (
        finished.order_by("tool", "duration").values_list("tool", "duration").iterator(2000)
    ):
        if duration is not None:
            durations[tool].append(duration.total_seconds())
    return {
        tool: (_round(percentile(values, 0.5)), _round(percentile(values, 0.95)))
        for tool, values in durations.items()
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def operation_stats(*, principal: Principal, since: datetime, until: datetime) -> OperationStats:
    """Counts by status and tool and p50/p95 durations of the caller's runs queued since `since`."""
    window = operations_visible_to(principal=principal).filter(
        queued_at__gte=since, queued_at__lte=until
    )
    counts = window.order_by().values("tool", "status").annotate(n=Count("id"))
    by_status: dict[str, int] = defaultdict(int)
    by_tool: dict[str, dict[str, int]] = defaultdict(dict)
    for row in counts:
        by_status[row["status"]] += row["n"]
        by_tool[row["tool"]][row["status"]] = row["n"]
    finished = window.filter(status__in=TERMINAL_STATUSES, duration__isnull=False)
    percentiles = _duration_percentiles(finished) if by_tool else {}
    tools = [
        ToolStats(
            tool=tool,
            count=sum(statuses.values()),
            by_status=dict(sorted(statuses.items())),
            p50_seconds=percentiles.get(tool, (None, None))[0],
            p95_seconds=percentiles.get(tool, (None, None))[1],
        )
        for tool, statuses in sorted(by_tool.items())
    ]
    return OperationStats(
        since=since,
        until=until,
        total=sum(by_status.values()),
        by_status=dict(sorted(by_status.items())),
        by_tool=tools,
    )


def tokens_of_user(*, user_id: int) -> QuerySet[ApiToken]:
    """A user's API tokens, revoked and expired ones included."""
    return ApiToken.objects.filter(user_id=user_id)


def token_get(*, user_id: int, token_id: int) -> ApiToken | None:
    """One of the user's tokens, or None."""
    return ApiToken.objects.filter(user_id=user_id, pk=token_id).first()


def _operation_key(operation_id: str) -> UUID | None:
    try:
        return UUID(operation_id)
    except (ValueError, TypeError):
        return None


def task_get(*, principal: Principal, task_id: str) -> Operation | None:
    """One of the caller's own tasks, or None: another user's task id is an unknown one."""
    key = _operation_key(task_id)
    if key is None:
        return None
    return Operation.objects.filter(pk=key, user_id=principal.user_id, is_task=True).first()


def task_page(*, principal: Principal, before: UUID | None, size: int) -> list[Operation]:
    """The caller's tasks, newest first, after the task `before` (keyset), up to size + 1."""
    queryset = Operation.objects.filter(user_id=principal.user_id, is_task=True)
    if before is not None:
        queryset = queryset.filter(pk__lt=before)
    return list(queryset.order_by("-id").defer("arguments", "result")[: size + 1])


def operation_outcomes(*, operation_ids: list[UUID]) -> list[Operation]:
    """The operations among `operation_ids` that have ended (recovering lost messages)."""
    if not operation_ids:
        return []
    return list(Operation.objects.filter(pk__in=operation_ids, status__in=TERMINAL_STATUSES))
