from datetime import timedelta

import pytest
from django.utils import timezone

from mcp_server.models import OperationStatus
from mcp_server.selectors import percentile
from tests.api.conftest import Caller, MakeRun

pytestmark = pytest.mark.django_db

URL = "/api/stats/"


def test_percentile_interpolates_like_percentile_cont():
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(i) for i in range(1, 11)], 0.95) == pytest.approx(9.55)


def test_counts_and_percentiles(alice: Caller, make_run: MakeRun):
    for seconds in range(1, 11):
        make_run(alice, tool="sleep", duration=timedelta(seconds=seconds))
    make_run(alice, tool="sleep", status=OperationStatus.RUNNING)
    make_run(alice, tool="echo", status=OperationStatus.FAILED, duration=timedelta(seconds=2))
    make_run(alice, tool="echo", queued_at=timezone.now() - timedelta(days=3))  # outside 24 h
    body = alice.client.get(URL).json()
    assert body["total"] == 12
    assert body["by_status"] == {"failed": 1, "running": 1, "succeeded": 10}
    by_tool = {row["tool"]: row for row in body["by_tool"]}
    assert by_tool["sleep"]["count"] == 11
    assert by_tool["sleep"]["by_status"] == {"running": 1, "succeeded": 10}
    assert by_tool["sleep"]["p50_seconds"] == pytest.approx(5.5)
    assert by_tool["sleep"]["p95_seconds"] == pytest.approx(9.55)
    assert by_tool["echo"] == {
        "tool": "echo",
        "count": 1,
        "by_status": {"failed": 1},
        "p50_seconds": 2.0,
        "p95_seconds": 2.0,
    }


def test_window_by_hours_and_since(alice: Caller, make_run: MakeRun):
    now = timezone.now()
    make_run(alice, queued_at=now - timedelta(hours=30))
    make_run(alice, queued_at=now - timedelta(hours=2))
    assert alice.client.get(URL).json()["total"] == 1
    assert alice.client.get(URL, {"hours": 48}).json()["total"] == 2
    assert alice.client.get(URL, {"hours": 1}).json()["total"] == 0
    since = (now - timedelta(hours=31)).isoformat()
    body = alice.client.get(URL, {"since": since}).json()
    assert body["total"] == 2
    assert body["since"].startswith(since[:16])


def test_unfinished_tool_has_no_percentiles(alice: Caller, make_run: MakeRun):
    make_run(alice, tool="sleep", status=OperationStatus.RUNNING)
    row = alice.client.get(URL).json()["by_tool"][0]
    assert row["p50_seconds"] is None
    assert row["p95_seconds"] is None


def test_empty_window(alice: Caller):
    assert alice.client.get(URL).json() | {"since": None, "until": None} == {
        "since": None,
        "until": None,
        "total": 0,
        "by_status": {},
        "by_tool": [],
    }


def test_scoped_like_runs(
    alice: Caller, bob: Caller, carol: Caller, dave: Caller, make_run: MakeRun
):
    make_run(alice)
    make_run(bob)
    make_run(dave)
    assert alice.client.get(URL).json()["total"] == 1
    assert carol.client.get(URL).json()["total"] == 2
    assert dave.client.get(URL).json()["total"] == 1


@pytest.mark.parametrize(
    "params",
    [
        {"hours": "0"},
        {"hours": "soon"},
        {"hours": "100000"},
        {"since": "last week"},
        {"since": "2024-01-01T00:00:00Z", "hours": "3"},
    ],
)
def test_bad_window_is_400(alice: Caller, params: dict):
    assert alice.client.get(URL, params).status_code == 400
