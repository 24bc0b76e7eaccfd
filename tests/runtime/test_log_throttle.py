"""Floods of one warning are logged at most once per interval, with their counts."""

import logging
from uuid import uuid4

import pytest

from mcp_server.channel_layers import ExpiringInMemoryChannelLayer
from mcp_server.cluster import publisher as publishing
from mcp_server.cluster.publisher import OperationPublisher
from mcp_server.log_throttle import ThrottledLog
from mcp_server.runtime.progress import ProgressReport

logger = logging.getLogger("tests.throttle")


def test_one_line_per_interval_with_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttled = ThrottledLog(logger, logging.WARNING, interval=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tests.throttle"):
        assert throttled.occurred("queue %s full", "q")
        for _ in range(9):
            assert not throttled.occurred("queue %s full", "q")
        now[0] = 1.0
        assert throttled.occurred("queue %s full", "q", count=5)
    assert [record.getMessage() for record in caplog.records] == [
        "queue q full (1 since the last such line, 1 in all)",
        "queue q full (14 since the last such line, 15 in all)",
    ]
    assert throttled.total == 15


async def test_a_full_listener_costs_one_line_not_one_per_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = ExpiringInMemoryChannelLayer(capacity=1)
    listener = await layer.new_channel()
    publisher = OperationPublisher(operation_id=uuid4(), layer=layer, listeners={listener})
    before = publishing._dropped.total  # the process's count: other tests may have added to it
    with caplog.at_level(logging.WARNING, logger="mcp_server.cluster.publisher"):
        for done in range(500):
            await publisher.progress(ProgressReport(done=done, total=500, message=None))
    assert publishing._dropped.total - before == 499  # the first fits
    lines = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
    assert len(lines) < 499  # a line a second at most (another test's drops may hold the first)
    for line in lines:
        assert line.startswith(f"listener {listener} is full: dropped operation.progress")
