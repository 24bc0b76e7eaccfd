from collections.abc import Iterator

import pytest

from accounts.principal import Principal
from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import registry
from mcp_server.tools.testing import RecordedCall, recording_context, sample_principal


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
    return sample_principal(tenant_slug="acme", username="alice")


@pytest.fixture
def events(principal: Principal) -> RecordedCall:
    return RecordedCall(principal, "t")


@pytest.fixture
async def context(events: RecordedCall) -> ToolContext:
    # A ToolContext binds to the running event loop, so it is made inside the test's loop.
    return recording_context(events)
