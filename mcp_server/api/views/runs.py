"""Runs (operations): list with filters, detail, item errors (paged and download), cancel."""

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponseBase
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from mcp_server.api.cancellation import CANCEL_MESSAGES, CancelOutcome, operation_cancel
from mcp_server.api.error_log import error_log_response
from mcp_server.api.filters import OperationFilter
from mcp_server.api.pagination import KeysetCursorPagination, LogCursorPagination
from mcp_server.api.schema import RETRY_AFTER, error_responses
from mcp_server.api.serializers import (
    CancelOutcomeSerializer,
    OperationErrorSerializer,
    RunDetailSerializer,
    RunSerializer,
)
from mcp_server.api.views.base import TenantScopedAPIView, TenantScopedMixin
from mcp_server.models import Operation, OperationError
from mcp_server.selectors import operation_errors, operation_get, operation_list

RUN_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The run's id."
)
CONTENT_DISPOSITION = OpenApiParameter(
    "Content-Disposition",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    required=True,
    description='attachment; filename="operation-<id>-errors.json"',
)


class RunLookupMixin(TenantScopedMixin):
    """Finds the run named in the URL among those the caller may see, else 404."""

    kwargs: dict[str, Any]

    def get_run(self) -> Operation:
        """The run, or NotFound (also for malformed ids and other tenants' runs)."""
        run = operation_get(principal=self.principal, operation_id=str(self.kwargs["id"]))
        if run is None:
            raise NotFound("No such run.")
        return run


@extend_schema(tags=["runs"], parameters=[RETRY_AFTER])
class RunListView(TenantScopedMixin, generics.ListAPIView[Operation]):
    """The caller's runs (a tenant admin's: the tenant's), newest first by default."""

    serializer_class = RunSerializer
    pagination_class = KeysetCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = OperationFilter
    queryset = Operation.objects.none()

    def get_queryset(self) -> QuerySet[Operation]:
        """The runs the caller may see."""
        if getattr(self, "swagger_fake_view", False):
            return Operation.objects.none()
        return operation_list(principal=self.principal)

    @extend_schema(
        summary="List runs", responses={200: RunSerializer(many=True), **error_responses(400)}
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A page of the caller's runs (a tenant admin's: the whole tenant's), filtered."""
        return super().get(request, *args, **kwargs)


@extend_schema(tags=["runs"], parameters=[RUN_ID, RETRY_AFTER])
class RunDetailView(RunLookupMixin, generics.RetrieveAPIView[Operation]):
    """One run with its arguments, progress, timings, result, error and error count."""

    serializer_class = RunDetailSerializer
    queryset = Operation.objects.none()

    def get_object(self) -> Operation:
        """The run named in the URL."""
        return self.get_run()

    @extend_schema(
        summary="Get a run", responses={200: RunDetailSerializer, **error_responses(404)}
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A run with its arguments, progress, timings, result, error and error count."""
        return super().get(request, *args, **kwargs)


@extend_schema(tags=["runs"], parameters=[RUN_ID, RETRY_AFTER])
class RunErrorListView(RunLookupMixin, generics.ListAPIView[OperationError]):
    """The item errors of a run, in the order they were logged, a page at a time."""

    serializer_class = OperationErrorSerializer
    pagination_class = LogCursorPagination
    queryset = OperationError.objects.none()

    def get_queryset(self) -> QuerySet[OperationError]:
        """The run's errors (404 when the run is not the caller's)."""
        if getattr(self, "swagger_fake_view", False):
            return OperationError.objects.none()
        return operation_errors(operation_id=self.get_run().pk)

    @extend_schema(
        summary="List a run's item errors",
        responses={200: OperationErrorSerializer(many=True), **error_responses(400, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A page of the run's item errors, oldest first."""
        return super().get(request, *args, **kwargs)


@extend_schema(tags=["runs"], parameters=[RUN_ID, RETRY_AFTER])
class RunErrorDownloadView(RunLookupMixin, TenantScopedAPIView):
    """The whole item-error log of a run as a JSON file, streamed."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="runs_errors_download",
        summary="Download a run's item errors",
        parameters=[CONTENT_DISPOSITION],
        description=(
            "The complete log as a JSON array of item errors, sent as an attachment "
            "(Content-Disposition) and streamed, so it may be very large."
        ),
        responses={
            (200, "application/json"): OpenApiResponse(
                OperationErrorSerializer(many=True),
                description="A JSON array; Content-Disposition: attachment.",
            ),
            **error_responses(404),
        },
    )
    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        """Stream the log."""
        run = self.get_run()
        return error_log_response(request._request, run.pk)


@extend_schema(tags=["runs"], parameters=[RUN_ID, RETRY_AFTER])
class RunCancelView(RunLookupMixin, TenantScopedAPIView):
    """Cancel a queued or running run, in whichever process runs it."""

    @extend_schema(
        summary="Cancel a run",
        request=None,
        responses={
            202: OpenApiResponse(CancelOutcomeSerializer, description="Cancellation requested."),
            409: OpenApiResponse(
                CancelOutcomeSerializer,
                description="Not cancelled: the run has already finished (`already_finished`).",
            ),
            **error_responses(404),
        },
    )
    def post(self, request: Request, **kwargs: Any) -> Response:
        """Cancel the run wherever it runs (members: their own; tenant admins: any)."""
        run = self.get_run()
        outcome = operation_cancel(operation=run)
        body = CancelOutcomeSerializer(
            {
                "id": run.pk,
                "outcome": outcome.value,
                "status": run.status,
                "detail": CANCEL_MESSAGES[outcome],
            }
        ).data
        code = (
            status.HTTP_202_ACCEPTED
            if outcome is CancelOutcome.CANCELLING
            else status.HTTP_409_CONFLICT
        )
        return Response(body, status=code)
