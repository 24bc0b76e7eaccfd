"""OpenAPI pieces: the bearer-token security scheme and the error responses every view shares."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents accounts.drf_auth.BearerTokenAuthentication as HTTP bearer auth."""

    target_class = "accounts.drf_auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        """An `Authorization: Bearer mcp_...` header."""
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (mcp_...), from POST /api/tokens/ or `createtoken`.",
        }


_DETAIL = inline_serializer("ErrorDetail", fields={"detail": serializers.CharField()})

_FIELD_ERRORS = OpenApiResponse(
    response={
        "type": "object",
        # a list of messages per field; a body that is not JSON at all gets one `detail`
        "additionalProperties": {
            "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
        },
    },
    description="Invalid input: a list of messages per field (or non_field_errors), or a "
    "`detail` when the body cannot be parsed.",
)

_ERRORS = {
    400: _FIELD_ERRORS,
    401: OpenApiResponse(_DETAIL, description="No or invalid credentials (WWW-Authenticate)."),
    403: OpenApiResponse(_DETAIL, description="The user belongs to no active tenant."),
    404: OpenApiResponse(_DETAIL, description="No such object among those the caller may see."),
    429: OpenApiResponse(_DETAIL, description="Rate limit exceeded; see Retry-After."),
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error responses: 401, 403 and 429 always, plus the given codes."""
    return {code: _ERRORS[code] for code in sorted({401, 403, 429, *codes})}


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds to wait before the next request.",
)
