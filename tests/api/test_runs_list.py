from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from mcp_server.models import OperationStatus
from tests.api.conftest import Caller, MakeRun, page_ids, walk

pytestmark = pytest.mark.django_db

URL = "/api/runs/"


def test_member_sees_only_own_runs(alice: Caller, bob: Caller, dave: Caller, make_run: MakeRun):
    mine = make_run(alice)
    make_run(bob)
    make_run(dave)
    assert page_ids(alice.client.get(URL)) == [str(mine.pk)]


def test_tenant_admin_sees_whole_tenant_only(
    alice: Caller, bob: Caller, carol: Caller, dave: Caller, make_run: MakeRun
):
    runs = [make_run(alice), make_run(bob), make_run(carol)]
    make_run(dave)
    assert set(page_ids(carol.client.get(URL))) == {str(run.pk) for run in runs}


def test_row_fields(alice: Caller, make_run: MakeRun):
    run = make_run(
        alice, tool="sleep", arguments={"seconds": 2}, progress=5, total=10, message="half"
    )
    row = alice.client.get(URL).json()["results"][0]
    assert row["id"] == str(run.pk)
    assert row["tool"] == "sleep"
    assert row["username"] == "alice"
    assert row["user"] == alice.user.pk
    assert row["arguments"] == {"seconds": 2}
    assert row["progress_percent"] == 50.0
    assert row["message"] == "half"
    assert run.duration is not None
    assert row["duration_seconds"] == pytest.approx(run.duration.total_seconds())
    assert "result" not in row  # only in the detail


def test_default_order_is_newest_first(alice: Caller, make_run: MakeRun):
    runs = [make_run(alice) for _ in range(3)]
    assert page_ids(alice.client.get(URL)) == [str(r.pk) for r in reversed(runs)]
    assert page_ids(alice.client.get(URL, {"ordering": "created"})) == [str(r.pk) for r in runs]


def test_ordering_by_duration_puts_unfinished_last(alice: Caller, make_run: MakeRun):
    slow = make_run(alice, duration=timedelta(seconds=30))
    fast = make_run(alice, duration=timedelta(seconds=1))
    running = make_run(alice, status=OperationStatus.RUNNING)
    longest_first = page_ids(alice.client.get(URL, {"ordering": "-duration"}))
    assert longest_first == [str(slow.pk), str(fast.pk), str(running.pk)]
    shortest_first = page_ids(alice.client.get(URL, {"ordering": "duration"}))
    assert shortest_first == [str(fast.pk), str(slow.pk), str(running.pk)]


@pytest.mark.parametrize("ordering", ["-created", "created", "-duration", "duration"])
def test_cursor_pages_cover_every_row_once(alice: Caller, make_run: MakeRun, ordering: str):
    same_time = timezone.now() - timedelta(minutes=5)
    runs = [make_run(alice, duration=timedelta(seconds=i % 3)) for i in range(7)]
    runs += [make_run(alice, queued_at=same_time, duration=timedelta(seconds=1)) for _ in range(4)]
    runs += [make_run(alice, status=OperationStatus.RUNNING) for _ in range(4)]
    rows = walk(alice.client, f"{URL}?{urlencode({'ordering': ordering, 'page_size': 2})}")
    assert sorted(row["id"] for row in rows) == sorted(str(run.pk) for run in runs)
    assert len(rows) == len(runs)
    one_page = page_ids(alice.client.get(URL, {"ordering": ordering, "page_size": "100"}))
    assert [row["id"] for row in rows] == one_page


@pytest.mark.parametrize("ordering", ["-created", "duration"])
def test_previous_link_returns_to_the_page_before(alice: Caller, make_run: MakeRun, ordering: str):
    for i in range(9):
        make_run(alice, status=OperationStatus.RUNNING if i % 4 == 0 else OperationStatus.FAILED)
    first = alice.client.get(URL, {"page_size": "3", "ordering": ordering}).json()
    assert first["previous"] is None
    second = alice.client.get(first["next"]).json()
    third = alice.client.get(second["next"]).json()
    assert third["next"] is None
    back = alice.client.get(third["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in second["results"]]
    back_again = alice.client.get(back["previous"]).json()
    assert [r["id"] for r in back_again["results"]] == [r["id"] for r in first["results"]]
    assert back_again["previous"] is None
    assert back_again["next"] is not None


def test_filter_by_tool(alice: Caller, make_run: MakeRun):
    sleep = make_run(alice, tool="sleep")
    make_run(alice, tool="echo")
    assert page_ids(alice.client.get(URL, {"tool": "sleep"})) == [str(sleep.pk)]


def test_filter_by_one_or_more_statuses(alice: Caller, make_run: MakeRun):
    failed = make_run(alice, status=OperationStatus.FAILED)
    running = make_run(alice, status=OperationStatus.RUNNING)
    make_run(alice, status=OperationStatus.SUCCEEDED)
    assert page_ids(alice.client.get(URL, {"status": "failed"})) == [str(failed.pk)]
    both = alice.client.get(f"{URL}?status=failed&status=running")
    assert set(page_ids(both)) == {str(failed.pk), str(running.pk)}


def test_filter_by_created_range(alice: Caller, make_run: MakeRun):
    now = timezone.now()
    old = make_run(alice, queued_at=now - timedelta(days=3))
    mid = make_run(alice, queued_at=now - timedelta(days=2))
    new = make_run(alice, queued_at=now - timedelta(hours=1))
    after = (now - timedelta(days=2, hours=1)).isoformat()
    before = (now - timedelta(days=1)).isoformat()
    assert page_ids(alice.client.get(URL, {"created_after": after, "created_before": before})) == [
        str(mid.pk)
    ]
    assert set(page_ids(alice.client.get(URL, {"created_after": after}))) == {
        str(mid.pk),
        str(new.pk),
    }
    assert page_ids(alice.client.get(URL, {"created_before": after})) == [str(old.pk)]


def test_filter_by_finished_range(alice: Caller, make_run: MakeRun):
    now = timezone.now()
    make_run(alice, queued_at=now - timedelta(hours=5), duration=timedelta(minutes=1))
    late = make_run(alice, queued_at=now - timedelta(hours=5), duration=timedelta(hours=4))
    make_run(alice, status=OperationStatus.RUNNING)
    after = (now - timedelta(hours=2)).isoformat()
    assert page_ids(alice.client.get(URL, {"finished_after": after})) == [str(late.pk)]
    before = (now - timedelta(hours=2)).isoformat()
    assert len(page_ids(alice.client.get(URL, {"finished_before": before}))) == 1


def test_admin_filters_by_user(alice: Caller, bob: Caller, carol: Caller, make_run: MakeRun):
    bobs = make_run(bob)
    make_run(alice)
    assert page_ids(carol.client.get(URL, {"user": bob.user.pk})) == [str(bobs.pk)]
    assert page_ids(carol.client.get(URL, {"username": "bob"})) == [str(bobs.pk)]


def test_member_filtering_by_another_user_sees_nothing(
    alice: Caller, bob: Caller, make_run: MakeRun
):
    make_run(bob)
    assert page_ids(alice.client.get(URL, {"user": bob.user.pk})) == []


def test_search_in_arguments_and_message(alice: Caller, make_run: MakeRun):
    by_argument = make_run(alice, arguments={"path": "photos/Holiday-2024"})
    by_message = make_run(alice, message="resizing holiday pictures")
    make_run(alice, arguments={"path": "work"}, message="other")
    found = page_ids(alice.client.get(URL, {"q": "holiday"}))
    assert set(found) == {str(by_argument.pk), str(by_message.pk)}
    assert page_ids(alice.client.get(URL, {"q": "100%_"})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"created_after": "yesterday"}, "created"),
        ({"finished_before": "2024-13-45"}, "finished"),
        ({"user": "bob"}, "user"),
        ({"user": "1.5"}, "user"),
        ({"ordering": "tool"}, "ordering"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "100000"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_invalid_filters_answer_400_with_field_errors(
    alice: Caller, params: dict[str, str], field: str
):
    response = alice.client.get(URL, params)
    assert response.status_code == 400
    assert any(key.startswith(field) for key in response.json()), response.json()


def test_cursor_of_another_ordering_is_rejected(alice: Caller, make_run: MakeRun):
    for _ in range(3):
        make_run(alice)
    next_url = alice.client.get(URL, {"page_size": 1}).json()["next"]
    response = alice.client.get(next_url.replace("page_size=1", "page_size=1&ordering=duration"))
    assert response.status_code == 400
    assert "cursor" in response.json()


@pytest.mark.parametrize("page_size", [5, 100])
def test_constant_number_of_queries(
    alice: Caller, make_run: MakeRun, django_assert_num_queries, page_size: int
):
    for _ in range(120):
        make_run(alice)
    alice.client.get(URL)  # records the token's use, once per interval
    # token lookup (user, membership and tenant joined), one page
    with django_assert_num_queries(2):
        response = alice.client.get(URL, {"page_size": page_size})
    assert len(response.json()["results"]) == page_size


def test_constant_number_of_queries_for_the_admin_with_filters(
    carol: Caller, bob: Caller, make_run: MakeRun, django_assert_num_queries
):
    for _ in range(30):
        make_run(bob, status=OperationStatus.FAILED)
    carol.client.get(URL)
    with django_assert_num_queries(2):
        response = carol.client.get(URL, {"status": "failed", "q": "run", "page_size": "25"})
    assert len(response.json()["results"]) == 25
