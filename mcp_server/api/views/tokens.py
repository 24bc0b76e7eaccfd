"""The caller's own API tokens: list, create (raw value shown once), revoke."""

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiToken
from accounts.services import token_create, token_revoke
from mcp_server.api.pagination import TokenCursorPagination
from mcp_server.api.schema import RETRY_AFTER, error_responses
from mcp_server.api.serializers import (
    ApiTokenSerializer,
    IssuedTokenSerializer,
    TokenCreateSerializer,
)
from mcp_server.api.views.base import TenantScopedMixin, parse_int_id
from mcp_server.selectors import token_get, tokens_of_user


@extend_schema(tags=["tokens"], parameters=[RETRY_AFTER])
class TokenListCreateView(TenantScopedMixin, generics.ListCreateAPIView[ApiToken]):
    """The caller's tokens (revoked and expired ones included), and issuing a new one."""

    serializer_class = ApiTokenSerializer
    pagination_class = TokenCursorPagination
    queryset = ApiToken.objects.none()

    def get_queryset(self) -> QuerySet[ApiToken]:
        """The caller's tokens."""
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return tokens_of_user(user_id=self.principal.user_id)

    @extend_schema(
        summary="List my tokens",
        responses={200: ApiTokenSerializer(many=True), **error_responses(400)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A page of the caller's tokens, newest first; never their values."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a token",
        request=TokenCreateSerializer,
        responses={
            201: OpenApiResponse(
                IssuedTokenSerializer, description="The new token; `token` is shown only here."
            ),
            **error_responses(400),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Issue a token for the caller; its raw value is in this response only."""
        given = TokenCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        days = given.validated_data.get("expires_in_days")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        issued = token_create(
            user=request.user, name=given.validated_data["name"], expires_at=expires_at
        )
        body = IssuedTokenSerializer(issued.token, context={"raw": issued.raw}).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["tokens"],
    parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH), RETRY_AFTER],
)
class TokenRevokeView(TenantScopedMixin, generics.DestroyAPIView[ApiToken]):
    """Revoke one of the caller's tokens (it stays listed, with revoked_at set)."""

    queryset = ApiToken.objects.none()
    serializer_class = ApiTokenSerializer

    def get_object(self) -> ApiToken:
        """The caller's token named in the URL, else 404."""
        pk = parse_int_id(str(self.kwargs["id"]))
        token = token_get(user_id=self.principal.user_id, token_id=pk) if pk else None
        if token is None:
            raise NotFound("No such token.")
        return token

    def perform_destroy(self, instance: ApiToken) -> None:
        """Revoke rather than delete."""
        token_revoke(token=instance)

    @extend_schema(
        summary="Revoke a token",
        responses={204: OpenApiResponse(description="Revoked."), **error_responses(404)},
    )
    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke one of the caller's tokens (sets revoked_at); revoking twice is harmless."""
        return super().delete(request, *args, **kwargs)
