"""Per-token (or per-user, for the session) request rate limit of the API."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from accounts.principal import Principal


class TokenRateThrottle(SimpleRateThrottle):
    """`MCP_API_RATE` requests per period for each token, or each session user."""

    scope = "api"

    def get_rate(self) -> str | None:
        """The rate from settings, read per request so it can be changed at run time."""
        return str(settings.MCP_API_RATE) if settings.MCP_API_RATE else None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        """Key by token id for bearer requests, by user id for the session; None: no limit."""
        auth = request.auth
        if isinstance(auth, Principal) and auth.token_id is not None:
            ident = f"token:{auth.token_id}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}
