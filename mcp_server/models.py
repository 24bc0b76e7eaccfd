"""History of every tool call (`Operation`) and its per-item error log (`OperationError`)."""

import re
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.lookups import In
from django.utils import timezone
from uuid_utils.compat import uuid7

from accounts.models import Tenant
from mcp_server.operations.lifecycle import ACTIVE_STATUS_ORDER, OperationStatus, is_terminal

_WORD = re.compile(r"[a-z_]+")


class InWords(In):
    """`IN` with its values (lower-case words) written into the statement, not bound.

    SQLite uses a partial index only for a query whose condition repeats the index's, and it
    compares an `IN` list of bound parameters with the index's literals as different terms.
    """

    def process_rhs(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        """The list as `('a', 'b')`; a value that is not a lower-case word is refused."""
        sql, params = super().process_rhs(compiler, connection)
        words = [str(value) for value in params]
        if not all(_WORD.fullmatch(word) for word in words):
            raise ValueError(f"only lower-case words can be written into a query: {words!r}")
        return sql % tuple(f"'{word}'" for word in words), ()


# The condition of the partial index over operations that have not ended (`op_active_time`,
# which only live calls enter, so a plain call first written at its end skips that b-tree);
# ACTIVE_ROWS is the same condition for the queries that must use it (reaper, cancels).
_ACTIVE_INDEX_CONDITION = Q(status__in=ACTIVE_STATUS_ORDER)
ACTIVE_ROWS = InWords(F("status"), ACTIVE_STATUS_ORDER)


class Operation(models.Model):
    """One `tools/call`: who ran which tool with what, how far it got and how it ended."""

    # Time-ordered ids: every call inserts a row, and UUIDv7 keys append to the primary key's
    # B-tree instead of landing at random pages (and they sort by creation).
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No single-column indexes on the foreign keys: the composite indexes below lead with them,
    # and each index is one more write per call.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="operations", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="operations",
        db_index=False,
    )
    tool = models.CharField(max_length=128)
    arguments = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=OperationStatus.choices, default=OperationStatus.QUEUED
    )
    progress = models.FloatField(default=0)
    total = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    result_summary = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_count = models.PositiveIntegerField(default=0)
    connection_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    # Durable MCP tasks (2025-11-25): the call outlives its connection and keeps its result.
    is_task = models.BooleanField(default=False, db_default=False)
    task_ttl = models.PositiveBigIntegerField(null=True, blank=True, help_text="milliseconds")
    progress_token = models.JSONField(null=True, blank=True)
    # The whole CallToolResult, kept when a client may fetch it later (tasks, worker mode).
    result = models.JSONField(null=True, blank=True)
    # Set by the database clock by the process running the operation; a stale one means that
    # process died, and the reaper marks the operation interrupted.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Durable cancellation: read back by the running process if the cancel message was lost.
    cancel_requested = models.BooleanField(default=False, db_default=False)
    # The process that runs it, host:pid: where its tool's placement put it (a web process or a
    # worker).
    runner = models.CharField(max_length=200, blank=True, default="", db_default="")
    # The API token that started it (None: a session cookie, or a plain call, which ends with
    # its connection): revoking the token stops the tasks it started. No foreign key, so that
    # deleting a token never scans history.
    token_id = models.PositiveBigIntegerField(null=True, blank=True)
    # The tasks extension: what a running task waits for its client to answer, by key (its
    # `inputRequests`); None when it waits for nothing.
    input_requests = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [
            models.Index(fields=["-queued_at"], name="op_time"),
            models.Index(fields=["tenant", "-queued_at"], name="op_tenant_time"),
            models.Index(fields=["user", "-queued_at"], name="op_user_time"),
            models.Index(
                fields=["status", "-queued_at"],
                name="op_active_time",
                condition=_ACTIVE_INDEX_CONDITION,
            ),
            models.Index(fields=["tenant", "tool", "-queued_at"], name="op_tenant_tool_time"),
            # tasks/list: a user's tasks, newest first (UUIDv7 ids sort by creation).
            models.Index(fields=["user", "-id"], name="op_user_task", condition=Q(is_task=True)),
        ]

    def __str__(self) -> str:
        return f"{self.tool} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        """Whether the operation has ended."""
        return is_terminal(self.status)


class OperationError(models.Model):
    """One item of an operation that failed without stopping the run."""

    operation = models.ForeignKey(
        Operation, on_delete=models.CASCADE, related_name="errors", db_index=False
    )
    item = models.CharField(max_length=1000)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["operation", "id"], name="operror_op_id")]

    def __str__(self) -> str:
        return f"{self.item}: {self.message[:80]}"
