from typing import Any

import pytest
from django.utils import timezone

from mcp_server.models import OperationStatus
from mcp_server.operations.history_rows import operations_persist
from mcp_server.operations.lifecycle import task_view
from tests.api.conftest import Caller, MakeRun
from tests.runtime.conftest import history_row

pytestmark = pytest.mark.django_db


def test_detail_has_arguments_result_error_timings_and_error_count(
    alice: Caller, make_run: MakeRun
):
    run = make_run(
        alice,
        tool="process_images",
        status=OperationStatus.FAILED,
        arguments={"folder": "in", "width": 100},
        result_summary={"processed": 8, "failed": 2},
        error="2 items failed",
        error_count=2,
        progress=10,
        total=10,
        request_id="7",
    )
    body = alice.client.get(f"/api/runs/{run.pk}/").json()
    assert body["id"] == str(run.pk)
    assert body["arguments"] == {"folder": "in", "width": 100}
    assert body["result"] == {"processed": 8, "failed": 2}
    assert body["error"] == "2 items failed"
    assert body["error_count"] == 2
    assert body["status"] == "failed"
    assert body["progress"] == 10
    assert body["progress_percent"] == 100.0
    assert body["request_id"] == "7"
    for key in ("queued_at", "started_at", "finished_at", "duration_seconds"):
        assert body[key] is not None


def test_running_run_has_no_finish(alice: Caller, make_run: MakeRun):
    run = make_run(alice, status=OperationStatus.RUNNING, progress=3)
    body = alice.client.get(f"/api/runs/{run.pk}/").json()
    assert body["finished_at"] is None
    assert body["duration_seconds"] is None
    assert body["progress_percent"] is None


def test_tenant_admin_sees_a_members_run(alice: Caller, carol: Caller, make_run: MakeRun):
    run = make_run(alice)
    assert carol.client.get(f"/api/runs/{run.pk}/").status_code == 200


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_someone_elses_run_is_404(
    alice: Caller, bob: Caller, dave: Caller, make_run: MakeRun, who: str
):
    run = make_run(alice)
    caller = {"bob": bob, "dave": dave}[who]
    for suffix in ("", "errors/", "errors.json", "cancel/"):
        method = caller.client.post if suffix == "cancel/" else caller.client.get
        response = method(f"/api/runs/{run.pk}/{suffix}")
        assert response.status_code == 404, (suffix, response.status_code)


def test_another_tenants_admin_gets_404(carol: Caller, dave: Caller, make_run: MakeRun):
    run = make_run(dave)
    assert carol.client.get(f"/api/runs/{run.pk}/").status_code == 404


# The same ids in every collection (pytest-xdist workers must collect identical tests).
@pytest.mark.parametrize(
    "bad_id", ["3b0c4f3d-d241-41a5-97c9-d88b53da2248", "not-a-uuid", "123", "%20"]
)
def test_unknown_or_malformed_id_is_404(alice: Caller, bad_id: str):
    for suffix in ("", "errors/", "errors.json"):
        response = alice.client.get(f"/api/runs/{bad_id}/{suffix}")
        assert response.status_code == 404
        assert response.json() == {"detail": "No such run."}


def test_wrong_methods_are_405(alice: Caller, make_run: MakeRun):
    run = make_run(alice)
    assert alice.client.delete(f"/api/runs/{run.pk}/").status_code == 405
    assert alice.client.post("/api/runs/", {}).status_code == 405
    assert alice.client.get(f"/api/runs/{run.pk}/cancel/").status_code == 405
    assert alice.client.put("/api/tools/", {}).status_code == 405
    assert alice.client.post("/api/stats/", {}).status_code == 405
    response = alice.client.patch("/api/tokens/", {})
    assert response.status_code == 405
    assert "GET" in response["Allow"]


def test_a_run_history_kept_in_part_shows_a_preview_and_its_original_size(
    alice: Caller, settings: Any
) -> None:
    settings.MCP_HISTORY_MAX_ARGUMENTS_BYTES = 1024
    settings.MCP_HISTORY_MAX_RESULT_BYTES = 1024
    user = alice.user
    snapshot = history_row(
        user.membership.tenant_id,
        user.pk,
        status=OperationStatus.SUCCEEDED,
        arguments={"text": "x" * 5000},
        result_summary={"text": "y" * 5000},
    )
    operations_persist(created=[snapshot], updated=[], errors=[])
    body = alice.client.get(f"/api/runs/{snapshot['id']}/").json()
    assert body["arguments"]["_truncated"] is True
    assert body["arguments"]["original_bytes"] == len('{"text":""}') + 5000
    assert body["arguments"]["preview"].startswith('{"text":"xxx')
    assert body["result"]["_truncated"] is True
    listed = alice.client.get("/api/runs/").json()["results"]
    assert listed[0]["arguments"]["_truncated"] is True


def test_a_task_waiting_for_answers_is_running_with_its_questions(alice: Caller, make_run: MakeRun):
    # The same wire word, two things: a task waiting for its client is `running` in history
    # (input_required on tasks/get, from its open questions); a 2026-07-28 call that ended
    # by asking is the terminal history status input_required, with no questions kept.
    asked = {"confirm": {"method": "elicitation/create", "params": {"message": "Delete it?"}}}
    waiting = make_run(alice, status=OperationStatus.RUNNING, is_task=True, input_requests=asked)
    body = alice.client.get(f"/api/runs/{waiting.pk}/").json()
    assert (body["status"], body["input_requests"], body["is_task"]) == ("running", asked, True)
    assert task_view(waiting, poll_interval=500).status == "input_required"
    ended = make_run(alice, status=OperationStatus.INPUT_REQUIRED, finished_at=timezone.now())
    body = alice.client.get(f"/api/runs/{ended.pk}/").json()
    assert (body["status"], body["input_requests"], body["is_task"]) == (
        "input_required",
        None,
        False,
    )
