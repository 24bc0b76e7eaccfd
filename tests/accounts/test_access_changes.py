"""Every code path that takes access away announces it after commit, and the announcement
cancels the tasks of that access in history and reaches every process (RUNNERS_GROUP)."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from uuid_utils.compat import uuid7

from accounts.access_changes import (
    AccessRevocation,
    RevokedBy,
    access_revoked,
    tenant_changed,
)
from accounts.limits import TenantLimits, default_limits
from accounts.models import ApiToken, Tenant
from accounts.services import IssuedToken, token_revoke
from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.messages import RUNNERS_GROUP
from mcp_server.cluster.session_messages import ACCESS_REVOKED, TENANT_CHANGED, TenantChanged
from mcp_server.models import Operation, OperationStatus
from mcp_server.tools.registry import registry
from tests.accounts.factories import member_token
from tests.broadcast import WebGroupListener

pytestmark = pytest.mark.django_db


class Announcements:
    """What was announced, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.limits: list[TenantLimits] = []

    def revoked(self, sender: Any, revocation: AccessRevocation, **kwargs: Any) -> None:
        self.sent.append(("revoked", revocation))

    def tenant(
        self,
        sender: Any,
        tenant_id: int,
        enabled_tools: Any,
        disabled_tools: Any,
        limits: TenantLimits,
        **kwargs: Any,
    ) -> None:
        self.sent.append(("tools", (tenant_id, enabled_tools, disabled_tools)))
        self.limits.append(limits)


@pytest.fixture
def announced() -> Iterator[Announcements]:
    announcements = Announcements()
    access_revoked.connect(announcements.revoked)
    tenant_changed.connect(announcements.tenant)
    yield announcements
    access_revoked.disconnect(announcements.revoked)
    tenant_changed.disconnect(announcements.tenant)


@pytest.fixture
def runners(settings: Any) -> Iterator[WebGroupListener]:
    """A channel in RUNNERS_GROUP of the in-memory layer, as every process has."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    listener = WebGroupListener(RUNNERS_GROUP)
    yield listener
    listener.close()


@pytest.fixture
def issued() -> IssuedToken:
    return member_token("alice", tenant_slug="acme")


def _revoked(kind: RevokedBy, *ids: int) -> tuple[str, AccessRevocation]:
    return ("revoked", AccessRevocation(kind=kind, ids=ids))


def test_token_revoke_announces_after_commit_and_once(
    issued: IssuedToken, announced: Announcements, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        token_revoke(token=issued.token)
        token_revoke(token=issued.token)  # revoking twice keeps the first time
    assert announced.sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert announced.sent == [_revoked(RevokedBy.TOKEN, issued.token.pk)]


def test_the_admin_revoke_action_announces(
    staff_client: Client,
    issued: IssuedToken,
    announced: Announcements,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:accounts_apitoken_changelist"),
            {"action": "revoke_tokens", "_selected_action": [issued.token.pk]},
        )
    assert response.status_code == 302
    assert announced.sent == [_revoked(RevokedBy.TOKEN, issued.token.pk)]


def test_the_rest_revoke_announces(
    issued: IssuedToken, announced: Announcements, django_capture_on_commit_callbacks: Any
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/tokens/{issued.token.pk}/").status_code == 204
    assert announced.sent == [_revoked(RevokedBy.TOKEN, issued.token.pk)]


def test_a_deleted_token_is_announced(
    issued: IssuedToken, announced: Announcements, django_capture_on_commit_callbacks: Any
) -> None:
    pk = issued.token.pk
    with django_capture_on_commit_callbacks(execute=True):
        issued.token.delete()
    assert announced.sent == [_revoked(RevokedBy.TOKEN_DELETED, pk)]


def test_deactivating_a_user_announces_whatever_saves_it(
    issued: IssuedToken, announced: Announcements, django_capture_on_commit_callbacks: Any
) -> None:
    user = issued.token.user
    with django_capture_on_commit_callbacks(execute=True):
        user.last_login = timezone.now()
        user.save(update_fields=["last_login"])  # an active user's save: nothing
        user.is_active = False
        user.save()  # the stock user admin saves every field
    assert announced.sent == [_revoked(RevokedBy.USER, user.pk)]


def test_a_removed_membership_is_announced(
    issued: IssuedToken, announced: Announcements, django_capture_on_commit_callbacks: Any
) -> None:
    user = issued.token.user
    with django_capture_on_commit_callbacks(execute=True):
        user.membership.delete()
    assert announced.sent == [_revoked(RevokedBy.MEMBERSHIP, user.pk)]


def _tenant_form(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    created = timezone.localtime(tenant.created_at)
    form = {
        "slug": tenant.slug,
        "name": tenant.name,
        "is_active": "on" if tenant.is_active else "",
        "tool_mode": "every",
        "tools": [tool.name for tool in registry],
        "created_at_0": created.strftime("%Y-%m-%d"),
        "created_at_1": created.strftime("%H:%M:%S"),
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value != ""}


def test_the_tenant_admin_announces_deactivation_a_new_tool_set_and_new_limits(
    staff_client: Client,
    issued: IssuedToken,
    announced: Announcements,
    django_capture_on_commit_callbacks: Any,
) -> None:
    tenant = Tenant.objects.get(slug="acme")
    url = reverse("admin:accounts_tenant_change", args=[tenant.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, _tenant_form(tenant, name="Acme Inc"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert announced.sent == []  # an edit that takes nothing away announces nothing
    chosen = {"tool_mode": "chosen", "tools": ["add", "multiply"]}
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, _tenant_form(tenant, **chosen))
    assert response.status_code == 302
    assert announced.sent == [("tools", (tenant.pk, frozenset({"add", "multiply"}), frozenset()))]
    tenant.refresh_from_db()
    assert (tenant.enabled_tools, tenant.disabled_tools) == (["add", "multiply"], [])
    announced.sent.clear()
    every_but_echo = [tool.name for tool in registry if tool.name != "echo"]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, _tenant_form(tenant, tools=every_but_echo))
    assert response.status_code == 302
    assert announced.sent == [("tools", (tenant.pk, None, frozenset({"echo"})))]
    tenant.refresh_from_db()
    assert (tenant.enabled_tools, tenant.disabled_tools) == (None, ["echo"])
    announced.sent.clear()
    announced.limits.clear()
    new_limits = {"limit_in_flight_per_connection": "2", "limit_message_rate": "7"}
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, _tenant_form(tenant, tools=every_but_echo, **new_limits))
    assert response.status_code == 302
    assert announced.sent == [("tools", (tenant.pk, None, frozenset({"echo"})))]
    (limits,) = announced.limits
    assert (limits.in_flight_per_connection, limits.message_rate_per_tenant) == (2, 7.0)
    assert limits.in_flight_per_user == default_limits().in_flight_per_user
    announced.sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            url, _tenant_form(tenant, is_active="", tools=every_but_echo, **new_limits)
        )
    assert response.status_code == 302
    assert announced.sent == [_revoked(RevokedBy.TENANT, tenant.pk)]
    tenant.refresh_from_db()
    assert tenant.is_active is False


def _task(issued: IssuedToken, *, token: int | None, is_task: bool = True) -> Operation:
    user = issued.token.user
    return Operation.objects.create(
        id=uuid7(),
        tenant_id=user.membership.tenant_id,
        user=user,
        tool="process_batch",
        status=OperationStatus.RUNNING,
        is_task=is_task,
        token_id=token,
        queued_at=timezone.now() - timedelta(seconds=5),
    )


def test_a_revocation_cancels_that_tokens_tasks_and_tells_every_process(
    issued: IssuedToken, runners: WebGroupListener, django_capture_on_commit_callbacks: Any
) -> None:
    other = member_token("alan", tenant_slug="acme")
    mine = _task(issued, token=issued.token.pk)
    plain = _task(issued, token=issued.token.pk, is_task=False)  # ends with its connection
    second_token = _task(issued, token=other.token.pk)
    with django_capture_on_commit_callbacks(execute=True):
        token_revoke(token=issued.token)
    assert runners.receive() == {
        "type": ACCESS_REVOKED,
        "kind": "token_id",
        "ids": [issued.token.pk],
        "status": 401,
        "reason": "token revoked",
    }
    mine.refresh_from_db()
    assert (mine.status, mine.error, mine.cancel_requested) == (
        OperationStatus.CANCELLED,
        "cancelled: access revoked: token revoked",
        True,
    )
    assert mine.finished_at is not None and mine.duration is not None
    for untouched in (plain, second_token):
        untouched.refresh_from_db()
        assert untouched.status == OperationStatus.RUNNING


def test_deactivating_a_user_cancels_all_their_tasks(
    issued: IssuedToken, runners: WebGroupListener, django_capture_on_commit_callbacks: Any
) -> None:
    by_token, by_session = _task(issued, token=issued.token.pk), _task(issued, token=None)
    user = get_user_model().objects.get(pk=issued.token.user_id)
    with django_capture_on_commit_callbacks(execute=True):
        user.is_active = False
        user.save()
    message = runners.receive()
    assert (message["kind"], message["ids"], message["status"]) == ("user_id", [user.pk], 403)
    for task in (by_token, by_session):
        task.refresh_from_db()
        assert task.status == OperationStatus.CANCELLED
        assert task.error == "cancelled: access revoked: account or tenant is inactive"


def test_a_new_tool_set_or_new_limits_are_sent_to_every_process(
    issued: IssuedToken, runners: WebGroupListener, django_capture_on_commit_callbacks: Any
) -> None:
    from accounts.services import tenant_update

    tenant = Tenant.objects.get(slug="acme")
    tenant.enabled_tools = ["multiply", "add"]
    with django_capture_on_commit_callbacks(execute=True):
        tenant_update(tenant=tenant, changed=["enabled_tools"])
    assert runners.receive() == {
        "type": TENANT_CHANGED,
        "tenant_id": tenant.pk,
        "enabled_tools": ["add", "multiply"],
        "disabled_tools": [],
        "limits": default_limits().as_dict(),
    }
    tenant.enabled_tools, tenant.disabled_tools = None, ["sleep", "echo"]
    with django_capture_on_commit_callbacks(execute=True):
        tenant_update(tenant=tenant, changed=["disabled_tools"])
    assert runners.receive() == {
        "type": TENANT_CHANGED,
        "tenant_id": tenant.pk,
        "enabled_tools": None,
        "disabled_tools": ["echo", "sleep"],
        "limits": default_limits().as_dict(),
    }
    tenant.limit_in_flight = 3
    with django_capture_on_commit_callbacks(execute=True):
        tenant_update(tenant=tenant, changed=["limit_in_flight"])
    message = decode_message(runners.receive())
    assert isinstance(message, TenantChanged)
    assert message.limits == replace(default_limits(), in_flight_per_tenant=3)


def test_revoked_tokens_of_a_deleted_row_do_not_break_the_announcement(
    issued: IssuedToken, runners: WebGroupListener, django_capture_on_commit_callbacks: Any
) -> None:
    token_pk = issued.token.pk
    with django_capture_on_commit_callbacks(execute=True):
        ApiToken.objects.filter(pk=token_pk).delete()
    message = runners.receive()
    assert (message["kind"], message["ids"], message["status"], message["reason"]) == (
        "token_id",
        [token_pk],
        401,
        "invalid token",
    )
