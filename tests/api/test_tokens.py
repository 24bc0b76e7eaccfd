from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import token_create
from tests.api.conftest import Caller

pytestmark = pytest.mark.django_db

URL = "/api/tokens/"


def test_token_lifecycle(alice: Caller):
    created = alice.client.post(URL, {"name": "laptop", "expires_in_days": 30}, format="json")
    assert created.status_code == 201
    body = created.json()
    raw = body["token"]
    assert raw.startswith("mcp_")
    assert body["prefix"] == raw[:12]
    assert body["name"] == "laptop"
    assert body["is_active"] is True
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29) < expires - timezone.now() <= timedelta(days=30)
    stored = ApiToken.objects.get(pk=body["id"])
    assert raw not in (stored.digest, stored.prefix)

    listed = alice.client.get(URL).json()["results"]
    assert [t["name"] for t in listed] == ["laptop", "alice-token"]
    assert all("token" not in t for t in listed)

    new_client = APIClient()
    new_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert new_client.get("/api/runs/").status_code == 200

    assert alice.client.delete(f"{URL}{body['id']}/").status_code == 204
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert new_client.get("/api/runs/").status_code == 401
    assert alice.client.delete(f"{URL}{body['id']}/").status_code == 204  # idempotent
    listed = alice.client.get(URL).json()["results"]
    assert listed[0]["revoked_at"] is not None
    assert listed[0]["is_active"] is False


def test_token_without_expiry(alice: Caller):
    body = alice.client.post(URL, {"name": "ci"}, format="json").json()
    assert body["expires_at"] is None


def test_token_can_revoke_itself(alice: Caller):
    assert alice.client.delete(f"{URL}{alice.issued.token.pk}/").status_code == 204
    assert alice.client.get(URL).status_code == 401


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "a", "expires_in_days": "soon"}, "expires_in_days"),
        ({"name": "a", "expires_in_days": 100_000}, "expires_in_days"),
    ],
)
def test_invalid_token_requests_are_400(alice: Caller, payload: dict, field: str):
    response = alice.client.post(URL, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_only_own_tokens_are_listed_and_revocable(alice: Caller, bob: Caller, carol: Caller):
    bobs = token_create(user=bob.user, name="bob-2").token
    assert all(t["id"] != bobs.pk for t in alice.client.get(URL).json()["results"])
    # not even a tenant admin may revoke someone else's token through the API
    assert carol.client.delete(f"{URL}{bobs.pk}/").status_code == 404
    assert alice.client.delete(f"{URL}{bobs.pk}/").status_code == 404
    bobs.refresh_from_db()
    assert bobs.revoked_at is None


@pytest.mark.parametrize("bad_id", ["999999", "abc", "99999999999999999999999", "-1"])
def test_unknown_token_is_404(alice: Caller, bad_id: str):
    assert alice.client.delete(f"{URL}{bad_id}/").status_code == 404


def test_tokens_list_is_paginated_with_constant_queries(alice: Caller, django_assert_num_queries):
    for i in range(30):
        token_create(user=alice.user, name=f"t{i}")
    alice.client.get(URL)
    for size in (5, 25):
        with django_assert_num_queries(2):
            body = alice.client.get(URL, {"page_size": size}).json()
        assert len(body["results"]) == size
