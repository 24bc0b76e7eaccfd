import json
from typing import Any

import pytest
from django.test import AsyncClient

from mcp_server.api import error_log
from mcp_server.models import OperationError
from tests.api.conftest import Caller, MakeRun, walk

pytestmark = pytest.mark.django_db


def _log(run, count: int) -> None:
    OperationError.objects.bulk_create(
        [
            OperationError(operation=run, item=f"img-{i}.png", message=f"bad {i}")
            for i in range(count)
        ]
    )


def test_errors_are_paginated_in_logging_order(alice: Caller, make_run: MakeRun):
    run = make_run(alice, error_count=25)
    _log(run, 25)
    rows = walk(alice.client, f"/api/runs/{run.pk}/errors/?page_size=10")
    assert [row["item"] for row in rows] == [f"img-{i}.png" for i in range(25)]
    assert set(rows[0]) == {"id", "item", "message", "created_at"}


def test_errors_list_is_constant_queries(
    alice: Caller, make_run: MakeRun, django_assert_num_queries
):
    run = make_run(alice)
    _log(run, 300)
    alice.client.get(f"/api/runs/{run.pk}/errors/")
    for size in (10, 250):
        # token (with its user), the run, one page
        with django_assert_num_queries(3):
            body = alice.client.get(f"/api/runs/{run.pk}/errors/", {"page_size": size}).json()
        assert len(body["results"]) == size


def test_download_is_a_streamed_json_attachment(
    alice: Caller, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(error_log, "BYTES_PER_CHUNK", 1024)
    monkeypatch.setattr(error_log, "ROWS_PER_QUERY", 100)
    run = make_run(alice)
    _log(run, 1500)
    response: Any = alice.client.get(f"/api/runs/{run.pk}/errors.json")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="operation-{run.pk}-errors.json"'
    )
    chunks = list(response.streaming_content)
    assert len(chunks) > 10  # written incrementally, not as one body
    rows = json.loads(b"".join(chunks))
    assert [row["item"] for row in rows] == [f"img-{i}.png" for i in range(1500)]
    paged = alice.client.get(f"/api/runs/{run.pk}/errors/", {"page_size": 1}).json()["results"]
    assert rows[0] == paged[0]


def test_download_of_an_empty_log_is_an_empty_array(alice: Caller, make_run: MakeRun):
    run = make_run(alice)
    response: Any = alice.client.get(f"/api/runs/{run.pk}/errors.json")
    assert json.loads(b"".join(response.streaming_content)) == []


@pytest.mark.django_db(transaction=True)
async def test_download_under_asgi_streams_asynchronously(alice: Caller, make_run: MakeRun):
    from asgiref.sync import sync_to_async

    run = await sync_to_async(make_run)(alice)
    await sync_to_async(_log)(run, 50)
    response: Any = await AsyncClient().get(
        f"/api/runs/{run.pk}/errors.json", headers={"Authorization": f"Bearer {alice.issued.raw}"}
    )
    assert response.status_code == 200, response.content
    assert response.is_async  # an async iterator: ASGI would buffer a sync one whole
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert len(json.loads(body)) == 50
