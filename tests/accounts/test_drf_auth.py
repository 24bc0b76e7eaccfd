"""BearerTokenAuthentication for the REST API: the same tokens as the WebSocket."""

from collections.abc import Sequence
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts.drf_auth import BearerTokenAuthentication
from accounts.models import Tenant
from accounts.principal import Principal
from accounts.services import IssuedToken, token_revoke
from tests.accounts.factories import member_token

pytestmark = pytest.mark.django_db

factory = APIRequestFactory()


class WhoAmI(APIView):
    """Echoes who the request authenticated as."""

    authentication_classes: Sequence[type[BaseAuthentication]] = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        principal = request.auth
        assert isinstance(principal, Principal)
        return Response(
            {
                "username": request.user.get_username(),
                "tenant": principal.tenant_slug,
                "token_id": principal.token_id,
            }
        )


class WhoAmIWithDefaults(WhoAmI):
    """The same view with the project's default authentication classes."""

    authentication_classes = APIView.authentication_classes


@pytest.fixture
def issued() -> IssuedToken:
    return member_token("alice", tenant_slug="acme")


def _authenticate(authorization: str | None) -> Any:
    extra: dict[str, Any] = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return BearerTokenAuthentication().authenticate(Request(factory.get("/", None, **extra)))


def test_valid_token_gives_user_and_principal(issued: IssuedToken) -> None:
    outcome = _authenticate(f"Bearer {issued.raw}")
    assert outcome is not None
    user, principal = outcome
    assert user == get_user_model().objects.get(username="alice")
    assert isinstance(principal, Principal)
    assert principal.user_id == user.pk
    assert principal.token_id == issued.token.pk
    assert _authenticate(f"bearer {issued.raw}") is not None


@pytest.mark.parametrize("header", [None, "", "Basic YWxpY2U6c2VjcmV0", "Token abc", "mcp_abc"])
def test_other_schemes_are_left_to_other_authenticators(header: str | None) -> None:
    assert _authenticate(header) is None


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer  mcp_a mcp_b"])
def test_malformed_bearer_header(header: str) -> None:
    with pytest.raises(exceptions.AuthenticationFailed, match="Malformed"):
        _authenticate(header)


def test_revoked_token_fails(issued: IssuedToken) -> None:
    token_revoke(token=issued.token)
    with pytest.raises(exceptions.AuthenticationFailed, match="Token revoked"):
        _authenticate(f"Bearer {issued.raw}")


def test_unknown_and_inactive(issued: IssuedToken) -> None:
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token"):
        _authenticate("Bearer mcp_" + "q" * 43)
    Tenant.objects.filter(slug="acme").update(is_active=False)
    # A valid token of an account that may not act is a 403, as on the WebSocket handshake.
    with pytest.raises(exceptions.PermissionDenied, match="inactive"):
        _authenticate(f"Bearer {issued.raw}")


def test_non_ascii_token_fails_cleanly() -> None:
    with pytest.raises(exceptions.AuthenticationFailed):
        _authenticate("Bearer mcp_caf\u00e9")


def test_view_with_valid_token(issued: IssuedToken) -> None:
    for view in (WhoAmI.as_view(), WhoAmIWithDefaults.as_view()):
        response = view(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {issued.raw}"))
        assert response.status_code == 200
        assert response.data == {
            "username": "alice",
            "tenant": "acme",
            "token_id": issued.token.pk,
        }


def test_view_with_revoked_token(issued: IssuedToken) -> None:
    token_revoke(token=issued.token)
    response = WhoAmI.as_view()(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {issued.raw}"))
    assert response.status_code == 401
    assert str(response.data["detail"]) == "Token revoked."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_view_without_credentials() -> None:
    response = WhoAmI.as_view()(factory.get("/"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
