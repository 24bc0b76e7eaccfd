from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import Membership
from tests.accounts.factories import member_create
from tests.api.conftest import Caller, MakeRun, page_ids

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/runs/"),
    ("get", "/api/runs/00000000-0000-0000-0000-000000000000/"),
    ("get", "/api/runs/00000000-0000-0000-0000-000000000000/errors/"),
    ("get", "/api/runs/00000000-0000-0000-0000-000000000000/errors.json"),
    ("post", "/api/runs/00000000-0000-0000-0000-000000000000/cancel/"),
    ("get", "/api/tools/"),
    ("get", "/api/tokens/"),
    ("post", "/api/tokens/"),
    ("delete", "/api/tokens/1/"),
    ("get", "/api/stats/"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_unauthenticated_is_401_with_www_authenticate(method: str, url: str):
    response = getattr(APIClient(), method)(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("header", ["Bearer mcp_nope", "Bearer", "Bearer a b", "Basic abc"])
def test_bad_credentials_are_401(header: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/runs/")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_session_user_sees_own_runs(alice: Caller, bob: Caller, make_run: MakeRun):
    mine = make_run(alice)
    make_run(bob)
    client = APIClient()
    client.force_login(alice.user)
    assert page_ids(client.get("/api/runs/")) == [str(mine.pk)]


def test_session_user_without_tenant_is_403():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("nobody")
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/runs/")
    assert response.status_code == 403
    assert "no tenant" in response.json()["detail"]


def test_session_user_of_inactive_tenant_is_403():
    user: Any = member_create("ghost", tenant_slug="gone")
    Membership.objects.get(user=user).tenant.__class__.objects.filter(slug="gone").update(
        is_active=False
    )
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/tools/").status_code == 403


def test_browsable_api_renders_for_the_session(alice: Caller, make_run: MakeRun):
    make_run(alice)
    client = APIClient()
    client.force_login(alice.user)
    response = client.get("/api/runs/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content


@override_settings(MCP_API_REQUESTS_PER_MINUTE_USER=3)
def test_rate_limit_is_per_user_whatever_the_token(alice: Caller, bob: Caller):
    from accounts.services import token_create

    second = APIClient()
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=alice.user).raw}")
    assert alice.client.get("/api/tools/").status_code == 200
    assert second.get("/api/tools/").status_code == 200
    assert alice.client.get("/api/tools/").status_code == 200
    limited = second.get("/api/runs/")  # a second token does not get a budget of its own
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert bob.client.get("/api/tools/").status_code == 200  # another user, their own budget


@override_settings(MCP_API_REQUESTS_PER_MINUTE_USER=2)
def test_rate_limit_for_the_session_is_per_user(alice: Caller):
    client = APIClient()
    client.force_login(alice.user)
    assert [client.get("/api/tools/").status_code for _ in range(3)] == [200, 200, 429]


@override_settings(MCP_API_REQUESTS_PER_MINUTE_USER=100, MCP_API_REQUESTS_PER_MINUTE_TENANT=3)
def test_rate_limit_per_tenant_counts_every_user_of_it(alice: Caller, bob: Caller, dave: Caller):
    statuses = [caller.client.get("/api/tools/").status_code for caller in (alice, bob, alice)]
    assert statuses == [200, 200, 200]
    assert bob.client.get("/api/tools/").status_code == 429  # alice and bob share acme's minute
    assert dave.client.get("/api/tools/").status_code == 200  # another tenant


@override_settings(MCP_API_REQUESTS_PER_MINUTE_USER=2)
def test_a_tenant_override_replaces_the_default(alice: Caller):
    from accounts.models import Tenant

    Tenant.objects.filter(slug="acme").update(limit_api_requests_per_minute_user=4)
    assert [alice.client.get("/api/tools/").status_code for _ in range(5)] == [200] * 4 + [429]


@override_settings(MCP_API_REQUESTS_PER_MINUTE_USER=0, MCP_API_REQUESTS_PER_MINUTE_TENANT=0)
def test_zero_means_no_limit(alice: Caller):
    assert all(alice.client.get("/api/tools/").status_code == 200 for _ in range(5))
