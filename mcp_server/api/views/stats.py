"""Counts and duration percentiles of the caller's runs over a window."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mcp_server.api.schema import RETRY_AFTER, error_responses
from mcp_server.api.serializers import StatsQuerySerializer, StatsSerializer
from mcp_server.api.views.base import TenantScopedAPIView
from mcp_server.selectors import operation_stats

DEFAULT_HOURS = 24


@extend_schema(tags=["stats"], parameters=[RETRY_AFTER])
class StatsView(TenantScopedAPIView):
    """Runs by status and by tool, with p50/p95 duration per tool, scoped like the runs list."""

    @extend_schema(
        summary="Run statistics",
        description=(
            "Over runs queued since `since`, or in the last `hours` hours (default 24). "
            "Percentiles are over finished runs, linearly interpolated."
        ),
        parameters=[StatsQuerySerializer],
        responses={200: StatsSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        """Counts by status and tool and p50/p95 durations over the window."""
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        until = timezone.now()
        since = query.validated_data.get("since") or until - timedelta(
            hours=query.validated_data.get("hours", DEFAULT_HOURS)
        )
        stats = operation_stats(principal=self.principal, since=since, until=until)
        return Response(StatsSerializer(stats).data)
