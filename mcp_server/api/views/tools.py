"""The caller's tool catalog with its schemas."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mcp_server.api.schema import RETRY_AFTER, error_responses
from mcp_server.api.serializers import ToolCatalogSerializer
from mcp_server.api.views.base import TenantScopedAPIView
from mcp_server.tools.catalog import catalog_for_principal


@extend_schema(tags=["tools"], parameters=[RETRY_AFTER])
class ToolListView(TenantScopedAPIView):
    """The tools the caller's tenant may use, as MCP tool definitions."""

    @extend_schema(
        summary="List tools", responses={200: ToolCatalogSerializer, **error_responses()}
    )
    def get(self, request: Request) -> Response:
        """The tenant's tools with their input and output schemas (not paginated)."""
        catalog = catalog_for_principal(self.principal)
        return Response({"tools": [tool.definition for tool in catalog.tools]})
