from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from mcp_server.models import Operation, OperationError, OperationStatus
from tests.accounts.factories import member_create


@pytest.fixture
def member(db: None) -> Any:
    return member_create("alice", tenant_slug="acme")


@pytest.fixture
def superuser_client(db: None) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", None)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(db: None) -> Client:
    """Staff who may only view operations and their errors."""
    user = get_user_model().objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_operation", "view_operationerror"])
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def make_operation(member: Any):
    def make(**fields: Any) -> Operation:
        values: dict[str, Any] = {
            "tenant_id": member.membership.tenant_id,
            "user": member,
            "tool": "echo",
            "arguments": {"text": "hello <b>world</b>"},
            "status": OperationStatus.SUCCEEDED,
        }
        values.update(fields)
        return Operation.objects.create(**values)

    return make


def log_errors(operation: Operation, count: int) -> None:
    OperationError.objects.bulk_create(
        [
            OperationError(operation=operation, item=f"item-{i}", message=f"m{i}")
            for i in range(count)
        ]
    )
    Operation.objects.filter(pk=operation.pk).update(error_count=count)
