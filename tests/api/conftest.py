from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import IssuedToken
from mcp_server.models import Operation, OperationStatus
from tests.accounts.factories import member_token


@dataclass
class Caller:
    """A user with a token, and an API client that sends it."""

    issued: IssuedToken
    client: APIClient

    @property
    def user(self) -> Any:
        return self.issued.token.user


def _caller(username: str, *, tenant_slug: str, tenant_admin: bool = False, **kw: Any) -> Caller:
    issued = member_token(username, tenant_slug=tenant_slug, tenant_admin=tenant_admin, **kw)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    return Caller(issued=issued, client=client)


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings: Any) -> Iterator[None]:
    """A private in-memory cache: counters are keyed by token id, which SQLite reuses after a
    rollback, and clearing must never flush a Redis that REDIS_URL may point at."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "api-tests",
        }
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db: None) -> Caller:
    return _caller("alice", tenant_slug="acme")


@pytest.fixture
def bob(db: None) -> Caller:
    return _caller("bob", tenant_slug="acme")


@pytest.fixture
def carol(db: None) -> Caller:
    """The tenant admin of acme."""
    return _caller("carol", tenant_slug="acme", tenant_admin=True)


@pytest.fixture
def dave(db: None) -> Caller:
    """A member of another tenant."""
    return _caller("dave", tenant_slug="globex")


MakeRun = Callable[..., Operation]


@pytest.fixture
def make_run(db: None) -> MakeRun:
    """Create an Operation row for a caller; finished runs get timings and a duration."""
    base = timezone.now() - timedelta(hours=1)
    counter = iter(range(1_000_000))

    def make(caller: Caller, **fields: Any) -> Operation:
        user = caller.user
        index = next(counter)
        status = fields.pop("status", OperationStatus.SUCCEEDED)
        queued_at = fields.pop("queued_at", base + timedelta(seconds=index))
        values: dict[str, Any] = {
            "tenant_id": user.membership.tenant_id,
            "user": user,
            "tool": "echo",
            "arguments": {"text": f"run {index}"},
            "status": status,
            "queued_at": queued_at,
        }
        if status in (
            OperationStatus.SUCCEEDED,
            OperationStatus.FAILED,
            OperationStatus.CANCELLED,
            OperationStatus.INTERRUPTED,
        ):
            duration = fields.pop("duration", timedelta(seconds=1 + index % 7))
            values.update(
                started_at=queued_at,
                finished_at=queued_at + duration if duration is not None else None,
                duration=duration,
            )
        values.update(fields)
        return Operation.objects.create(**values)

    return make


def page_ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def walk(client: APIClient, url: str) -> list[dict[str, Any]]:
    """Every row of a cursor-paginated listing, following next links."""
    rows: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        next_url = body["next"]
    return rows
