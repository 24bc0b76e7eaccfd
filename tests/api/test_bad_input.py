"""Crafted query strings, cursors and bodies: each is a 400 with a clear message, never a 500."""

import base64
import json
from typing import Any

import orjson
import pytest
from rest_framework.test import APIClient

from mcp_server.models import OperationError
from tests.api.conftest import Caller, MakeRun

pytestmark = pytest.mark.django_db

RUNS = "/api/runs/"
TOKENS = "/api/tokens/"
# A moment that exists as written but not once converted to UTC (year 10000).
LAST_MOMENT_WEST = "9999-12-31T23:00:00-23:00"
DEEP = 100_000


def keyset_cursor(**fields: Any) -> str:
    """A runs-list cursor with the given members (any of which may be of the wrong kind)."""
    data = {"o": "-created", "v": "2026-01-01T00:00:00+00:00", "k": "0" * 32, "r": False}
    data.update(fields)
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode("ascii")


def drf_cursor(position: str) -> str:
    """A DRF cursor (the error log's and the tokens list's) at `position`."""
    return base64.b64encode(f"p={position}".encode()).decode("ascii")


def deep_json(depth: int) -> str:
    """A JSON body nested `depth` arrays deep."""
    return "[" * depth + "]" * depth


def assert_bad_request(response: Any, field: str | None = None) -> dict[str, Any]:
    """A 400 whose JSON body names the field at fault (or says what is wrong)."""
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    if field is not None:
        assert field in body, body
        assert body[field] and all(isinstance(text, str) and text for text in body[field])
    return body


@pytest.fixture
def client(alice: Caller) -> APIClient:
    """Alice's client, answering a server error with a 500 instead of raising it."""
    alice.client.raise_request_exception = False
    return alice.client


@pytest.mark.parametrize("size", ["²", "٣", "1٠", "Ⅻ", "１０"])
@pytest.mark.parametrize("url", [RUNS, TOKENS, "errors"])
def test_page_size_of_unicode_digits_is_refused(
    client: APIClient, alice: Caller, make_run: MakeRun, url: str, size: str
) -> None:
    if url == "errors":
        url = f"/api/runs/{make_run(alice).pk}/errors/"
    assert_bad_request(client.get(url, {"page_size": size}), "page_size")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"k": 5}, id="key-a-number"),
        pytest.param({"k": ["0" * 32]}, id="key-a-list"),
        pytest.param({"k": {"a": 1}}, id="key-an-object"),
        pytest.param({"o": ["-created"]}, id="ordering-a-list"),
        pytest.param({"v": 5}, id="time-a-number"),
        pytest.param({"v": "2026-13-45T99:00:00+00:00"}, id="time-impossible"),
        pytest.param({"r": "yes"}, id="direction-a-string"),
    ],
)
def test_cursor_members_of_the_wrong_kind_are_refused(
    client: APIClient, alice: Caller, make_run: MakeRun, fields: dict[str, Any]
) -> None:
    make_run(alice)
    assert_bad_request(client.get(RUNS, {"cursor": keyset_cursor(**fields)}), "cursor")


def test_cursor_that_is_not_an_object_is_refused(client: APIClient) -> None:
    raw = base64.urlsafe_b64encode(b'["-created", 1]').decode("ascii")
    assert_bad_request(client.get(RUNS, {"cursor": raw}), "cursor")


@pytest.mark.parametrize("when", [LAST_MOMENT_WEST, "0001-01-01T00:30:00+01:00"])
def test_cursor_time_outside_what_utc_can_hold_is_refused(
    client: APIClient, alice: Caller, make_run: MakeRun, when: str
) -> None:
    make_run(alice)
    assert_bad_request(client.get(RUNS, {"cursor": keyset_cursor(v=when)}), "cursor")


@pytest.mark.parametrize(
    "microseconds",
    [
        pytest.param(2**63, id="beyond-bigint"),
        pytest.param(2**64 - 1, id="beyond-timedelta"),
        pytest.param(-(2**63) - 1, id="below-bigint"),
        pytest.param(1.5, id="a-fraction"),
        pytest.param(True, id="a-boolean"),
    ],
)
@pytest.mark.parametrize("ordering", ["duration", "-duration"])
def test_cursor_duration_beyond_what_is_stored_is_refused(
    client: APIClient, alice: Caller, make_run: MakeRun, microseconds: Any, ordering: str
) -> None:
    make_run(alice)
    cursor = keyset_cursor(o=ordering, v=microseconds)
    assert_bad_request(client.get(RUNS, {"ordering": ordering, "cursor": cursor}), "cursor")


@pytest.mark.parametrize("microseconds", [2**63 - 1, -(2**63), 0])
def test_cursor_durations_a_column_can_hold_are_accepted(
    client: APIClient, alice: Caller, make_run: MakeRun, microseconds: int
) -> None:
    make_run(alice)
    cursor = keyset_cursor(o="duration", v=microseconds)
    response = client.get(RUNS, {"ordering": "duration", "cursor": cursor})
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("bound", ["created_after", "created_before", "finished_after"])
def test_time_filters_outside_what_utc_can_hold_are_refused(client: APIClient, bound: str) -> None:
    assert_bad_request(client.get(RUNS, {bound: LAST_MOMENT_WEST}), bound.rsplit("_", 1)[0])


def test_stats_since_outside_what_utc_can_hold_is_refused(client: APIClient) -> None:
    assert_bad_request(client.get("/api/stats/", {"since": LAST_MOMENT_WEST}), "since")


@pytest.mark.parametrize("position", ["abc", "2026-13-01", "1e999", "9" * 40, "1.5"])
def test_error_log_cursor_positions_that_are_not_ids_are_refused(
    client: APIClient, alice: Caller, make_run: MakeRun, position: str
) -> None:
    run = make_run(alice, error_count=1)
    OperationError.objects.create(operation=run, item="a", message="bad")
    url = f"/api/runs/{run.pk}/errors/"
    assert_bad_request(client.get(url, {"cursor": drf_cursor(position)}), "cursor")


@pytest.mark.parametrize("position", ["abc", "2026-13-01", "-1", "9" * 40, LAST_MOMENT_WEST])
def test_token_cursor_positions_that_are_not_times_are_refused(
    client: APIClient, position: str
) -> None:
    assert_bad_request(client.get(TOKENS, {"cursor": drf_cursor(position)}), "cursor")


def test_drf_cursors_still_page(client: APIClient, alice: Caller, make_run: MakeRun) -> None:
    run = make_run(alice, error_count=3)
    for item in "abc":
        OperationError.objects.create(operation=run, item=item, message="bad")
    for url in (f"/api/runs/{run.pk}/errors/", TOKENS):
        seen, next_url = 0, f"{url}?page_size=1"
        while next_url:
            response = client.get(next_url)
            assert response.status_code == 200, response.content
            seen += len(response.json()["results"])
            next_url = response.json()["next"]
        assert seen == (3 if "errors" in url else 1)


def test_a_deeply_nested_json_body_is_refused(client: APIClient) -> None:
    response = client.post(TOKENS, deep_json(DEEP), content_type="application/json")
    body = assert_bad_request(response)
    assert "nested too deeply" in body["detail"]


def test_a_deeply_nested_json_body_is_refused_for_staff_broadcasts(
    client: APIClient, alice: Caller
) -> None:
    alice.user.is_staff = True
    alice.user.save(update_fields=["is_staff"])
    response = client.post("/api/broadcasts/", deep_json(DEEP), content_type="application/json")
    assert "nested too deeply" in assert_bad_request(response)["detail"]


def test_moderately_nested_json_is_still_parsed(client: APIClient) -> None:
    body = {"name": "ok", "pad": [[[[{"a": [1]}]]]]}
    response = client.post(TOKENS, orjson.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
