"""Serializers of the API: runs, item errors, tools, tokens, statistics and cancel outcomes."""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiToken
from mcp_server.models import Operation, OperationError

MAX_TOKEN_DAYS = 3650


class RunSerializer(serializers.ModelSerializer[Operation]):
    """A run as listed: who ran which tool with what, how far it got, when."""

    username = serializers.CharField(source="user.username", read_only=True)
    progress_percent = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()
    arguments = serializers.JSONField(
        read_only=True,
        help_text=(
            "The call's arguments. U+0000 and lone surrogates are stored as the text of their "
            "escape (\\u0000); arguments over MCP_HISTORY_MAX_ARGUMENTS_BYTES of JSON as "
            '{"_truncated": true, "original_bytes": n, "preview": "<the first bytes>"}.'
        ),
    )

    class Meta:
        model = Operation
        fields: tuple[str, ...] = (
            "id",
            "tool",
            "status",
            "user",
            "username",
            "arguments",
            "progress",
            "total",
            "progress_percent",
            "message",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "error_count",
        )
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_progress_percent(self, operation: Operation) -> float | None:
        """Progress as a percentage of the total, when the total is known."""
        if not operation.total:
            return None
        return round(min(operation.progress / operation.total, 1.0) * 100, 2)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_seconds(self, operation: Operation) -> float | None:
        """Queued-to-finished time in seconds, once finished."""
        return None if operation.duration is None else operation.duration.total_seconds()


class RunDetailSerializer(RunSerializer):
    """A run with its result and error."""

    result = serializers.JSONField(
        source="result_summary",
        read_only=True,
        allow_null=True,
        help_text=(
            "A summary of the result (its structured content, or its text). Over "
            'MCP_HISTORY_MAX_RESULT_BYTES: {"_truncated": true, "original_bytes": n, '
            '"preview": "<the first bytes>"}.'
        ),
    )

    input_requests = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text=(
            "While a task of the tasks extension waits for its client (status running; "
            "input_required on tasks/get): its open questions by key, each "
            '{"method", "params"}; null otherwise. Not the status input_required, which is '
            "a 2026-07-28 call that ended by asking (an input-required result, never a task)."
        ),
    )

    class Meta(RunSerializer.Meta):
        fields = (
            *RunSerializer.Meta.fields,
            "result",
            "error",
            "request_id",
            "is_task",
            "cancel_requested",
            "input_requests",
        )
        read_only_fields: tuple[str, ...] = fields


class OperationErrorSerializer(serializers.ModelSerializer[OperationError]):
    """One failed item of a run."""

    class Meta:
        model = OperationError
        fields = ("id", "item", "message", "created_at")
        read_only_fields: tuple[str, ...] = fields


class CancelOutcomeSerializer(serializers.Serializer[Any]):
    """What a cancel request did."""

    id = serializers.UUIDField()
    outcome = serializers.ChoiceField(choices=["cancelling", "already_finished"])
    status = serializers.CharField(help_text="The run's recorded status when asked.")
    detail = serializers.CharField()


class ToolDefinitionSerializer(serializers.Serializer[Any]):
    """An MCP tool definition (as in tools/list) with its JSON schemas."""

    name = serializers.CharField()
    title = serializers.CharField(required=False)
    description = serializers.CharField()
    inputSchema = serializers.DictField()
    outputSchema = serializers.DictField(required=False)
    annotations = serializers.DictField(required=False)
    execution = serializers.DictField(required=False)


class ToolCatalogSerializer(serializers.Serializer[Any]):
    """The caller's tools."""

    tools = ToolDefinitionSerializer(many=True)


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    """A token as its owner sees it later: never its value, only its prefix."""

    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "is_active",
        )
        read_only_fields: tuple[str, ...] = fields

    def get_is_active(self, token: ApiToken) -> bool:
        """Whether the token still authenticates (not revoked, not expired)."""
        return not token.is_revoked and not token.is_expired(timezone.now())


class TokenCreateSerializer(serializers.Serializer[Any]):
    """What a new token needs: a name and, optionally, a lifetime in days."""

    name = serializers.CharField(max_length=100, min_length=1)
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=MAX_TOKEN_DAYS, required=False, allow_null=True
    )


class IssuedTokenSerializer(ApiTokenSerializer):
    """A token just created, with its raw value: shown in this response only."""

    token = serializers.SerializerMethodField()

    class Meta(ApiTokenSerializer.Meta):
        fields = (*ApiTokenSerializer.Meta.fields, "token")
        read_only_fields: tuple[str, ...] = fields

    def get_token(self, token: ApiToken) -> str:
        """The raw token, passed in the serializer context; it is never stored."""
        return str(self.context["raw"])


class StatsQuerySerializer(serializers.Serializer[Any]):
    """The window of GET /api/stats/: since a time, or the last N hours (default 24)."""

    since = serializers.DateTimeField(required=False)
    hours = serializers.IntegerField(required=False, min_value=1, max_value=24 * 366)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """At most one of the two."""
        if "since" in attrs and "hours" in attrs:
            raise serializers.ValidationError("Give either since or hours, not both.")
        return attrs


class ToolStatsSerializer(serializers.Serializer[Any]):
    """Counts and duration percentiles of one tool."""

    tool = serializers.CharField()
    count = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    p50_seconds = serializers.FloatField(allow_null=True)
    p95_seconds = serializers.FloatField(allow_null=True)


class StatsSerializer(serializers.Serializer[Any]):
    """Runs over a window: counts by status, and per tool with p50/p95 durations."""

    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    by_tool = ToolStatsSerializer(many=True)
