"""Who may use the API: an authenticated member of an active tenant, as a Principal."""

from typing import Any

from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.principal import Principal
from accounts.selectors import principal_for_user

_PRINCIPAL_ATTRIBUTE = "_mcp_principal"


def request_principal(request: Request) -> Principal:
    """The caller of a request: the bearer token's Principal or the session user's.

    Raises NotAuthenticated (401) without credentials and PermissionDenied (403) when the user
    belongs to no tenant or the account or tenant is inactive.
    """
    cached = getattr(request, _PRINCIPAL_ATTRIBUTE, None)
    if cached is not None:
        return cached
    if isinstance(request.auth, Principal):
        principal = request.auth
    else:
        if not request.user or not request.user.is_authenticated:
            raise NotAuthenticated()
        outcome = principal_for_user(request.user)
        if not isinstance(outcome, Principal):
            raise PermissionDenied(outcome.reason.capitalize() + ".")
        principal = outcome
    setattr(request, _PRINCIPAL_ATTRIBUTE, principal)
    return principal


class IsTenantMember(BasePermission):
    """Allows authenticated users who belong to an active tenant."""

    def has_permission(self, request: Request, view: Any) -> bool:
        """Resolve the caller's Principal (401/403 when there is none)."""
        request_principal(request)
        return True
