"""POST /api/broadcasts/: staff only; validates, then puts one message on WEB_GROUP."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import Tenant
from mcp_server.broadcasts import MAX_BROADCAST_LENGTH
from mcp_server.cluster.session_messages import BROADCAST
from tests.accounts.factories import member_token
from tests.api.conftest import Caller
from tests.broadcast import WebGroupListener

pytestmark = pytest.mark.django_db

URL = "/api/broadcasts/"
TEXT = "Server restarts in 5 minutes"


@pytest.fixture
def listener(settings: Any) -> Iterator[WebGroupListener]:
    """The in-memory layer (whatever REDIS_URL says): the test client runs in this process."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    listener = WebGroupListener()
    yield listener
    listener.close()


@pytest.fixture
def staff(db: None) -> Caller:
    """A staff user (a member of the tenant ops) with a bearer token."""
    issued = member_token("root", tenant_slug="ops")
    user = issued.token.user
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    return Caller(issued=issued, client=client)


def _sent(**fields: Any) -> dict[str, Any]:
    return {"type": BROADCAST, "level": "notice", "tenant_id": None, "user_id": None, **fields}


# --- sending -------------------------------------------------------------------------------


def test_staff_broadcasts_to_everyone(staff: Caller, listener: WebGroupListener) -> None:
    response = staff.client.post(URL, {"message": TEXT}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"audience": "every connected client", "level": "notice"}
    assert listener.receive() == _sent(data=TEXT)
    listener.assert_nothing_sent()  # exactly one message


def test_tenant_and_level(staff: Caller, alice: Caller, listener: WebGroupListener) -> None:
    body = {"message": TEXT, "tenant": "acme", "level": "warning"}
    response = staff.client.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {
        "audience": "every connected client of tenant acme",
        "level": "warning",
    }
    acme = Tenant.objects.get(slug="acme")
    assert listener.receive() == _sent(data=TEXT, level="warning", tenant_id=acme.pk)


def test_user_only(staff: Caller, bob: Caller, listener: WebGroupListener) -> None:
    response = staff.client.post(URL, {"message": TEXT, "user": "bob"}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["audience"] == "every connected client of user bob"
    assert listener.receive() == _sent(data=TEXT, user_id=bob.user.pk)


def test_tenant_and_user(staff: Caller, bob: Caller, listener: WebGroupListener) -> None:
    body = {"message": TEXT, "tenant": "acme", "user": "bob", "level": "emergency"}
    response = staff.client.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {
        "audience": "every connected client of user bob in tenant acme",
        "level": "emergency",
    }
    assert listener.receive() == _sent(
        data=TEXT,
        level="emergency",
        tenant_id=bob.user.membership.tenant_id,
        user_id=bob.user.pk,
    )


def test_null_tenant_and_user_mean_everyone(staff: Caller, listener: WebGroupListener) -> None:
    body = {"message": TEXT, "tenant": None, "user": None}
    response = staff.client.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    assert listener.receive() == _sent(data=TEXT)


def test_message_is_stripped_and_may_be_2000_characters(
    staff: Caller, listener: WebGroupListener
) -> None:
    response = staff.client.post(URL, {"message": "  hello \n"}, format="json")
    assert response.status_code == 202, response.content
    assert listener.receive()["data"] == "hello"
    longest = "x" * MAX_BROADCAST_LENGTH
    response = staff.client.post(URL, {"message": longest}, format="json")
    assert response.status_code == 202, response.content
    assert listener.receive()["data"] == longest


def test_staff_session_user_without_a_tenant(listener: WebGroupListener) -> None:
    root = get_user_model().objects.create_superuser("boss", "boss@example.com", None)
    client = APIClient()
    client.force_login(root)
    response = client.post(URL, {"message": TEXT}, format="json")
    assert response.status_code == 202, response.content
    assert listener.receive() == _sent(data=TEXT)


def test_logs_audience_and_level_not_the_text(
    staff: Caller, listener: WebGroupListener, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "do not log this text"
    with caplog.at_level(logging.INFO, logger="mcp_server.broadcasts"):
        response = staff.client.post(URL, {"message": secret, "level": "alert"}, format="json")
    assert response.status_code == 202, response.content
    lines = [r.getMessage() for r in caplog.records if r.name == "mcp_server.broadcasts"]
    assert lines == [
        f"Broadcast sent to every connected client (level alert, {len(secret)} characters)"
    ]
    assert secret not in caplog.text


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "   \n "}, "message"),
        ({"message": "x" * (MAX_BROADCAST_LENGTH + 1)}, "message"),
        ({"message": ["a"]}, "message"),
        ({"message": TEXT, "level": "loud"}, "level"),
        ({"message": TEXT, "level": "WARNING"}, "level"),
        ({"message": TEXT, "tenant": ""}, "tenant"),
        ({"message": TEXT, "tenant": {"slug": "acme"}}, "tenant"),
        ({"message": TEXT, "user": 3}, "user"),  # "3" is looked up as a username
    ],
)
def test_invalid_bodies_are_400_with_field_errors(
    staff: Caller, listener: WebGroupListener, body: dict[str, Any], field: str
) -> None:
    response = staff.client.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert list(errors) == [field]
    assert all(isinstance(message, str) for message in errors[field])
    listener.assert_nothing_sent()


def test_unknown_tenant_or_user_says_which(staff: Caller, listener: WebGroupListener) -> None:
    response = staff.client.post(URL, {"message": TEXT, "tenant": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"tenant": ["No tenant with slug 'nope'."]}
    response = staff.client.post(URL, {"message": TEXT, "user": "nobody"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"user": ["No user named 'nobody'."]}
    listener.assert_nothing_sent()


def test_user_not_in_the_tenant_is_refused(
    staff: Caller, alice: Caller, dave: Caller, listener: WebGroupListener
) -> None:
    body = {"message": TEXT, "tenant": "acme", "user": "dave"}
    response = staff.client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json() == {"user": ["User dave is not a member of tenant acme."]}
    listener.assert_nothing_sent()


# --- who may send --------------------------------------------------------------------------


def test_members_and_tenant_admins_are_403(
    alice: Caller, carol: Caller, listener: WebGroupListener
) -> None:
    for caller in (alice, carol):
        response = caller.client.post(URL, {"message": TEXT}, format="json")
        assert response.status_code == 403, response.content
        assert "detail" in response.json()
    listener.assert_nothing_sent()


def test_anonymous_is_401(listener: WebGroupListener) -> None:
    response = APIClient().post(URL, {"message": TEXT}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer mcp_not-a-real-token-at-all")
    assert bad.post(URL, {"message": TEXT}, format="json").status_code == 401
    listener.assert_nothing_sent()


def test_only_post(staff: Caller, listener: WebGroupListener) -> None:
    assert staff.client.get(URL).status_code == 405
    listener.assert_nothing_sent()


# --- the channel layer failing -------------------------------------------------------------


def test_channel_layer_failure_is_503(
    staff: Caller, listener: WebGroupListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(group: str, message: dict[str, Any]) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", refuse)
    response = staff.client.post(URL, {"message": TEXT}, format="json")
    assert response.status_code == 503
    assert "could not be sent" in response.json()["detail"]
