"""Helpers shared by runtime and tool tests."""

import asyncio
from typing import Any

from accounts.models import Membership
from accounts.principal import Principal
from accounts.selectors import principal_from_membership
from accounts.services import tenant_create, user_create

POLL_INTERVAL = 0.005


def make_principal(tenant: str, username: str) -> Principal:
    from accounts.models import Tenant

    if not Tenant.objects.filter(slug=tenant).exists():
        tenant_create(slug=tenant)
    user = user_create(username=username, tenant_slug=tenant)
    membership = Membership.objects.select_related("tenant", "user").get(user_id=user.pk)
    return principal_from_membership(membership)


class Wire:
    """What a session would send to its client, for assertions."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.logs: list[tuple[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        self.logs.append((level, data))

    def progress(self) -> list[dict[str, Any]]:
        return [m["params"] for m in self.messages if m.get("method") == "notifications/progress"]


async def wait_until(predicate, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(POLL_INTERVAL)

    await asyncio.wait_for(poll(), timeout)


async def yield_to_other_tasks() -> None:
    """Let other tasks run once, as a busy tool does between items (not a wait for anything)."""
    await asyncio.sleep(0)
