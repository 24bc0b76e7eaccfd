"""What every API view shares: authenticated tenant members only, and the caller's Principal."""

from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from accounts.principal import Principal
from mcp_server.api.permissions import IsTenantMember, request_principal


class TenantScopedMixin:
    """Requires a tenant member and exposes them as `self.principal`."""

    permission_classes: Any = [IsAuthenticated, IsTenantMember]
    request: Any

    @property
    def principal(self) -> Principal:
        """The authenticated caller."""
        return request_principal(self.request)


class TenantScopedAPIView(TenantScopedMixin, APIView):
    """An APIView for tenant members."""


def parse_int_id(raw: str) -> int | None:
    """A positive database id from a URL segment, or None (so callers answer 404)."""
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None
