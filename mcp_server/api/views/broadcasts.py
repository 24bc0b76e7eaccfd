"""Staff only: send a broadcast (notifications/message) to connected clients of every process."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mcp_server.api.broadcast_serializers import (
    BroadcastCreateSerializer,
    BroadcastReceiptSerializer,
)
from mcp_server.api.schema import RETRY_AFTER, error_responses
from mcp_server.broadcasts import BroadcastError, BroadcastUnavailable, broadcast_send

# Service field names that differ from the request body's.
_BODY_FIELDS = {"text": "message"}


class ChannelLayerUnavailable(APIException):
    """503: the channel layer (Redis) did not take the broadcast."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The broadcast could not be sent; try again later."
    default_code = "channel_layer_unavailable"


def _responses() -> dict[int, OpenApiResponse]:
    responses = error_responses(400)
    detail = responses[403].response
    responses[403] = OpenApiResponse(detail, description="The caller is not a staff user.")
    responses[503] = OpenApiResponse(
        detail, description="The channel layer (Redis) did not take the broadcast."
    )
    return responses


@extend_schema(tags=["broadcasts"], parameters=[RETRY_AFTER])
class BroadcastView(APIView):
    """Send a notifications/message to every connected client, of a tenant and/or a user."""

    permission_classes = [IsAuthenticated, IsAdminUser]

    @extend_schema(
        summary="Broadcast a message",
        description=(
            "Staff only. Sends `message` as an MCP `notifications/message` (with `level`, "
            "default notice) to every client connected to any web process, or only to those "
            "of `tenant` (a slug) and/or `user` (a username). Delivery is best effort: only "
            "clients connected now receive it, and nothing is stored."
        ),
        request=BroadcastCreateSerializer,
        responses={
            202: OpenApiResponse(BroadcastReceiptSerializer, description="Sent; to whom."),
            **_responses(),
        },
    )
    def post(self, request: Request) -> Response:
        """Validate, send through the channel layer and answer who it went to."""
        given = BroadcastCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            receipt = broadcast_send(
                text=data["message"],
                level=data["level"],
                tenant=data.get("tenant"),
                user=data.get("user"),
            )
        except BroadcastError as exc:
            raise ValidationError({_BODY_FIELDS.get(exc.field, exc.field): [str(exc)]}) from exc
        except BroadcastUnavailable as exc:
            raise ChannelLayerUnavailable() from exc
        body = BroadcastReceiptSerializer(receipt).data
        return Response(body, status=status.HTTP_202_ACCEPTED)
