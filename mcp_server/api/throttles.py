"""REST request budgets per user (whichever token or session it uses) and per tenant.

Counters are django-ratelimit's fixed one-minute windows (staggered per key) in Django's
cache: Redis when REDIS_URL is set, so every web process shares them; otherwise the process's
memory. The budgets come from the caller's `principal.limits` (settings, or the tenant's
override); 0 switches one off. The library is used for its counter only, not as an installed
app: its system check calls the in-memory cache "not shared", which is the point of a
single-process run.
"""

from typing import Any

from django_ratelimit.core import get_usage
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.limits import default_limits
from accounts.principal import Principal
from mcp_server.api.permissions import request_principal


def _budgets(request: Request) -> tuple[tuple[str, str, int], ...]:
    """(counter group, key, requests per minute) that a request counts against."""
    if isinstance(request.auth, Principal):
        principal = request.auth
    elif request.user and request.user.is_authenticated:
        try:
            principal = request_principal(request)
        except APIException:  # staff without a tenant (where a view allows them): per user
            per_minute = default_limits().api_requests_per_minute_user
            return (("api-user", str(request.user.pk), per_minute),)
    else:
        return ()  # refused by the permission check, if the view needs a caller
    limits = principal.limits
    return (
        ("api-user", str(principal.user_id), limits.api_requests_per_minute_user),
        ("api-tenant", str(principal.tenant_id), limits.api_requests_per_minute_tenant),
    )


class PrincipalRateThrottle(BaseThrottle):
    """`api_requests_per_minute_user` per user, then `api_requests_per_minute_tenant` per tenant."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        """Count the request against its user's and its tenant's minute; False when over."""
        for group, ident, per_minute in _budgets(request):
            if per_minute <= 0:
                continue
            usage = get_usage(
                request,
                group=group,
                key=lambda _group, _request, ident=ident: ident,
                rate=f"{per_minute}/m",
                increment=True,
            )
            if usage is not None and usage["should_limit"]:
                self._wait = max(1, int(usage["time_left"]))
                return False
        return True

    def wait(self) -> float | None:
        """Seconds until the window that refused the request ends (sent as Retry-After)."""
        return self._wait
