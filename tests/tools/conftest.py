import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.principal import Principal
from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import registry


class RecordedEvents:
    """A CallEvents that keeps every log call, in order."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, Any, str | None]] = []

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        self.logs.append((level, data, logger))


class StubOperation:
    """Just what a ToolContext reads of its running operation, without any history."""

    def __init__(self, principal: Principal, tool_name: str) -> None:
        self.id = uuid.uuid4()
        self.principal = principal
        self.tool_name = tool_name
        self.cancel_requested = False
        self.reports: list[tuple[float, float | None, str | None]] = []
        self.item_errors: list[tuple[str, str]] = []

    def report(self, done: float, total: float | None, message: str | None) -> None:
        self.reports.append((done, total, message))

    def add_item_error(self, item: str, message: str) -> None:
        self.item_errors.append((item, message))


@pytest.fixture(autouse=True)
def _global_registry_untouched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test registers by mistake in the global registry is gone afterwards."""
    before = list(registry._tools)
    monkeypatch.setattr(registry, "_tools", dict(registry._tools))
    yield
    monkeypatch.undo()
    assert list(registry._tools) == before


@pytest.fixture
def principal() -> Principal:
    return Principal(
        user_id=1,
        username="alice",
        tenant_id=1,
        tenant_slug="acme",
        is_tenant_admin=False,
        enabled_tools=None,
        token_id=None,
    )


@pytest.fixture
def events() -> RecordedEvents:
    return RecordedEvents()


@pytest.fixture
async def context(principal: Principal, events: RecordedEvents) -> ToolContext:
    # A ToolContext binds to the running event loop, so it is made inside the test's loop.
    operation: Any = StubOperation(principal, "t")
    return ToolContext(operation=operation, events=events)
