"""Helpers shared by runtime and tool tests."""

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from channels.layers import get_channel_layer

from accounts.models import Membership
from accounts.principal import Principal
from accounts.selectors import principal_from_membership
from accounts.services import tenant_create, user_create
from mcp_server.process_runtime import ProcessRuntime, build_runtime, install_runtime
from mcp_server.runtime.runner import OperationRunner

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


async def wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, what: str = "the condition"
) -> None:
    """Check `predicate` every POLL_INTERVAL until it holds, for state of this process that
    has no event to wait on; fail naming `what` when `timeout` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


async def yield_to_other_tasks() -> None:
    """Let other tasks run once, as a busy tool does between items (not a wait for anything)."""
    await asyncio.sleep(0)


@contextmanager
def runtime_installed(runner: OperationRunner | Any) -> Iterator[ProcessRuntime]:
    """A process runtime around `runner` (a real one or a stand-in), installed for the code
    Django calls into (REST views, admin actions) while the block runs."""
    runtime = build_runtime(web=False, runner=runner, layer=get_channel_layer())
    previous = install_runtime(runtime)
    try:
        yield runtime
    finally:
        install_runtime(previous)
