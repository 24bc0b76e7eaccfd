"""Django REST framework authentication with the same API tokens as the WebSocket."""

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.auth_throttle import failed_auth_throttle
from accounts.principal import Principal
from accounts.selectors import AuthFailure, user_and_principal_for_token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`; the Principal is available as `request.auth`."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Principal] | None:
        """Authenticate a request that carries a bearer token; None lets others try.

        An address that spent its failed attempts gets a 429 before the token is looked up.
        """
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        throttle = failed_auth_throttle()
        address = request.META.get("REMOTE_ADDR") or None
        refusal = throttle.refusal(address)
        if refusal is not None:
            raise exceptions.Throttled(wait=refusal.retry_after, detail=refusal.reason)
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        outcome = user_and_principal_for_token(raw)
        if isinstance(outcome, AuthFailure):
            if outcome.status == 401:
                throttle.record_failure(address)
            message = outcome.reason.capitalize() + "."
            if outcome.status == 403:  # a valid token whose account may not act: not a 401
                raise exceptions.PermissionDenied(message)
            raise exceptions.AuthenticationFailed(message)
        return outcome

    def authenticate_header(self, request: Request) -> str:
        """The WWW-Authenticate value of a 401."""
        return f'{self.keyword} realm="api"'
