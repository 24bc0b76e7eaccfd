"""History as a deployment's servers recorded it, read through one database connection.

A read opens the deployment's database itself (`Deployment.sql`: its SQLite file, or its
PostgreSQL database): no `manage.py shell`, so no Django boot per poll. Rows come back alike
from either database: ids as UUID strings, JSON columns decoded, booleans as bool, timestamps
as aware datetimes.
"""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.e2e.support import Deployment, wait_until

HISTORY_TIMEOUT = 30.0
_OPERATION_COLUMNS = (
    "id",
    "tool",
    "status",
    "progress",
    "total",
    "error",
    "error_count",
    "arguments",
    "result_summary",
    "is_task",
    "request_id",
    "queued_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
)
_JSON_COLUMNS = frozenset({"arguments", "result_summary"})
_TIME_COLUMNS = frozenset({"queued_at", "started_at", "finished_at", "heartbeat_at"})
# What `operations(**equals)` may filter on, and the column each name means.
_FILTERS = {name: f"o.{name}" for name in ("id", "tool", "status", "request_id")} | {
    "username": "u.username"
}


def operations(deployment: Deployment, **equals: str) -> list[dict[str, Any]]:
    """Operation rows (with the caller's `username`) whose columns equal `equals`, newest first.

    Filters: id, tool, status, request_id, username.
    """
    unknown = set(equals) - set(_FILTERS)
    assert not unknown, f"operations() cannot filter on {sorted(unknown)}"
    on_sqlite = deployment.database_name is None
    where = " AND ".join(f"{_FILTERS[name]} = %s" for name in equals) or "1 = 1"
    params = [
        uuid.UUID(value).hex if name == "id" and on_sqlite else value
        for name, value in equals.items()
    ]
    columns = ", ".join(f"o.{column}" for column in _OPERATION_COLUMNS)
    rows = deployment.sql(
        f"SELECT {columns}, u.username FROM mcp_server_operation o "
        f"JOIN auth_user u ON u.id = o.user_id WHERE {where} ORDER BY o.queued_at DESC",
        params,
    )
    return [_normalized(row) for row in rows]


def wait_for_operation(
    deployment: Deployment, what: str, timeout: float = HISTORY_TIMEOUT, **equals: str
) -> dict[str, Any]:
    """The newest operation row matching `equals`, once there is one (fails naming `what`)."""
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = operations(deployment, **equals)
        return bool(found)

    wait_until(recorded, timeout, what)
    return found[0]


def item_errors(deployment: Deployment) -> list[str]:
    """The item names of every recorded item error."""
    return [row["item"] for row in deployment.sql("SELECT item FROM mcp_server_operationerror")]


def _normalized(row: dict[str, Any]) -> dict[str, Any]:
    """One row as a PostgreSQL read returns it, whichever database it came from."""
    row = dict(row)
    row["id"] = str(uuid.UUID(str(row["id"])))
    row["is_task"] = bool(row["is_task"])
    for column in _JSON_COLUMNS:
        if isinstance(row[column], str):
            row[column] = json.loads(row[column])
    for column in _TIME_COLUMNS:
        if isinstance(row[column], str):
            row[column] = datetime.fromisoformat(row[column]).replace(tzinfo=UTC)
    return row
