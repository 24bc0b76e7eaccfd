"""The queries of active operations that scan history use the partial index over active rows.

`op_active_time` holds only queued and running operations, so a query reaches it only when
its condition repeats the index's (SQLite compares the `IN` list term for term, in order).
Each statement the reaper and the revoked-access cancel run is explained
here with its own parameters, on whichever database the run uses.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from accounts.principal import Principal
from mcp_server.models import Operation, OperationStatus
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.operations.store import operations_reap_lost, tasks_cancel_revoked
from tests.support import make_principal

pytestmark = pytest.mark.django_db

INDEX = "op_active_time"


@contextmanager
def explained_selects() -> Iterator[list[tuple[str, str]]]:
    """Collect (statement, plan) of each SELECT of operations run inside the block."""
    plans: list[tuple[str, str]] = []

    def explain(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if not many and sql.startswith("SELECT") and '"mcp_server_operation"' in sql:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    # A test's table is tiny: a sequential scan would win whatever the indexes.
                    cursor.execute("SET LOCAL enable_seqscan = off")
                    cursor.execute(f"EXPLAIN {sql}", params)
                else:
                    cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
                plan = "\n".join(" ".join(map(str, row)) for row in cursor.fetchall())
            plans.append((sql, plan))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        yield plans


# Ended rows, a day old, beside the active ones, as history is: PostgreSQL's planner, costing
# the indexes of a table of two rows, took op_time or op_user_task as often as op_active_time;
# with history behind them and its statistics fresh, only the partial index is small.
ENDED_ROWS = 200


@pytest.fixture
def principal() -> Principal:
    """A user with a queued task and a plain call, neither ended, and ended calls and tasks."""
    principal = make_principal("plans", "planner")
    day_ago = timezone.now() - timedelta(days=1)
    owner = {"tenant_id": principal.tenant_id, "user_id": principal.user_id, "token_id": 7}
    ended = [
        Operation(
            **owner,
            tool="add",
            is_task=n % 2 == 0,
            status=OperationStatus.SUCCEEDED,
            queued_at=day_ago + timedelta(seconds=n),
        )
        for n in range(ENDED_ROWS)
    ]
    Operation.objects.bulk_create(ended)
    for is_task in (True, False):
        Operation.objects.create(**owner, tool="add", is_task=is_task)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Operation._meta.db_table}")
    return principal


def test_the_reaper_finds_abandoned_operations_through_the_index(principal: Principal) -> None:
    with explained_selects() as plans:
        operations_reap_lost(lost_after=60, unclaimed_after=60)
    assert len(plans) == 2  # lost runners, unclaimed hand-overs
    for sql, plan in plans:
        assert INDEX in plan and searches_an_index(plan), f"{sql}\n{plan}"


def searches_an_index(plan: str) -> bool:
    """Whether the plan reaches rows through an index rather than reading the whole table."""
    if connection.vendor == "postgresql":
        return "Index" in plan and "Seq Scan" not in plan
    return "SEARCH" in plan and "SCAN" not in plan


# Tokens have no index of their own: their tasks are found among the active rows; a user's or
# a tenant's through the index that leads with them.
@pytest.mark.parametrize("field", ["token_id", "user_id", "tenant_id"])
def test_revoked_access_finds_its_tasks_through_an_index(principal: Principal, field: str) -> None:
    ids = {"token_id": 7, "user_id": principal.user_id, "tenant_id": principal.tenant_id}
    with explained_selects() as plans:
        tasks_cancel_revoked(field=field, ids=[ids[field]], stop=Stop(StopReason.ACCESS_REVOKED))
    assert len(plans) == 1
    sql, plan = plans[0]
    assert searches_an_index(plan), f"{sql}\n{plan}"
    if field == "token_id":
        assert INDEX in plan, f"{sql}\n{plan}"
