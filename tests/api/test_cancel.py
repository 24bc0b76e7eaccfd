import asyncio
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from accounts.selectors import principal_for_token
from mcp_server.cluster import messages
from mcp_server.models import Operation, OperationStatus
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.limits import FairScheduler, Limits
from mcp_server.runtime.runner import CallRequest, OperationRunner
from mcp_server.tools.registry import registry
from tests.api.conftest import Caller, MakeRun
from tests.support import runtime_installed

WAIT = 10.0


class StubRunner:
    """Records cancel calls; `running` is the set of ids it pretends to run."""

    def __init__(self, running: set[UUID]) -> None:
        self.running = running
        self.cancelled: list[UUID] = []

    def cancel(self, operation_id: UUID, reason: Stop | None = None) -> bool:
        if operation_id in self.running:
            self.cancelled.append(operation_id)
            return True
        return False


@pytest.fixture
def stub_runner() -> Iterator[StubRunner]:
    runner = StubRunner(set())
    with runtime_installed(runner):
        yield runner


@pytest.mark.django_db
@pytest.mark.parametrize("status", [OperationStatus.RUNNING, OperationStatus.QUEUED])
def test_member_cancels_own_run_running_here(
    alice: Caller, make_run: MakeRun, stub_runner: StubRunner, status: str
):
    run = make_run(alice, status=status)
    stub_runner.running.add(run.pk)
    response = alice.client.post(f"/api/runs/{run.pk}/cancel/")
    assert response.status_code == 202
    assert response.json()["outcome"] == "cancelling"
    assert stub_runner.cancelled == [run.pk]


@pytest.mark.django_db
def test_tenant_admin_cancels_a_members_run(
    alice: Caller, carol: Caller, make_run: MakeRun, stub_runner: StubRunner
):
    run = make_run(alice, status=OperationStatus.RUNNING)
    stub_runner.running.add(run.pk)
    assert carol.client.post(f"/api/runs/{run.pk}/cancel/").status_code == 202
    assert stub_runner.cancelled == [run.pk]


@pytest.mark.django_db
def test_member_cannot_cancel_anothers_run(
    alice: Caller, bob: Caller, dave: Caller, make_run: MakeRun, stub_runner: StubRunner
):
    run = make_run(alice, status=OperationStatus.RUNNING)
    stub_runner.running.add(run.pk)
    assert bob.client.post(f"/api/runs/{run.pk}/cancel/").status_code == 404
    assert dave.client.post(f"/api/runs/{run.pk}/cancel/").status_code == 404
    assert stub_runner.cancelled == []


@pytest.mark.django_db
def test_finished_run_is_409(alice: Caller, make_run: MakeRun, stub_runner: StubRunner):
    run = make_run(alice, status=OperationStatus.SUCCEEDED)
    response = alice.client.post(f"/api/runs/{run.pk}/cancel/")
    assert response.status_code == 409
    body = response.json()
    assert body["outcome"] == "already_finished"
    assert body["status"] == "succeeded"
    assert "already finished" in body["detail"]


@pytest.mark.django_db
def test_run_of_another_process_is_cancelled_through_the_cluster(
    alice: Caller, make_run: MakeRun, stub_runner: StubRunner
):
    """Not running here: the request is recorded in history (read back by the heartbeat of
    the process that runs it) and sent to every runner process."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(messages.RUNNERS_GROUP, channel)
    try:
        run = make_run(alice, status=OperationStatus.RUNNING)
        response = alice.client.post(f"/api/runs/{run.pk}/cancel/")
        assert response.status_code == 202
        assert response.json()["outcome"] == "cancelling"
        run.refresh_from_db()
        assert run.cancel_requested
        assert run.status == OperationStatus.RUNNING  # not a task: its runner ends it
        sent = async_to_sync(layer.receive)(channel)
        assert sent == {
            "type": messages.OPERATION_CANCEL,
            "id": str(run.pk),
            "reason": StopReason.CANCEL_REQUESTED.value,
            "detail": "",
        }
    finally:
        async_to_sync(layer.group_discard)(messages.RUNNERS_GROUP, channel)


@pytest.mark.django_db
def test_task_turns_cancelled_at_once(alice: Caller, make_run: MakeRun, stub_runner: StubRunner):
    run = make_run(alice, status=OperationStatus.RUNNING)
    Operation.objects.filter(pk=run.pk).update(is_task=True)
    assert alice.client.post(f"/api/runs/{run.pk}/cancel/").status_code == 202
    run.refresh_from_db()
    assert run.status == OperationStatus.CANCELLED
    assert run.finished_at is not None


@pytest.mark.django_db
def test_session_cancel_needs_csrf(alice: Caller, make_run: MakeRun, stub_runner: StubRunner):
    from rest_framework.test import APIClient

    run = make_run(alice, status=OperationStatus.RUNNING)
    stub_runner.running.add(run.pk)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice.user)
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 403
    assert stub_runner.cancelled == []


class Progress:
    """The `send` of a call: sets an event on the first progress notification."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        self.started.set()


class NoEvents:
    async def log(self, level: str, data: Any, logger: str | None) -> None:
        return None


@pytest.mark.django_db(transaction=True)
async def test_cancel_through_the_api_stops_a_real_call(alice: Caller):
    """The view runs on a worker thread; the call is cancelled on the event loop that runs it."""
    writer = HistoryWriter(interval=3600)
    runner = OperationRunner(
        scheduler=FairScheduler(Limits()), writer=writer, progress_rate=100, persist_interval=60
    )
    principal = await sync_to_async(principal_for_token)(alice.issued.raw)
    sleep_tool = registry.get("sleep")
    assert sleep_tool is not None
    progress = Progress()
    request = CallRequest(
        principal=principal,  # type: ignore[arg-type]
        tool=sleep_tool,
        arguments={"seconds": 60},
        connection_id="c1",
        request_id=1,
        progress_token="p",
    )
    call = asyncio.create_task(runner.call(request, send=progress, events=NoEvents()))
    with runtime_installed(runner):
        await _cancel_through_the_api(alice, runner, writer, call, progress)


async def _cancel_through_the_api(
    alice: Caller,
    runner: OperationRunner,
    writer: HistoryWriter,
    call: "asyncio.Task[Any]",
    progress: "Progress",
) -> None:
    try:
        await asyncio.wait_for(progress.started.wait(), WAIT)
        [operation_id] = runner.running_ids
        await sync_to_async(writer.flush)()
        response = await sync_to_async(alice.client.post)(f"/api/runs/{operation_id}/cancel/")
        assert response.status_code == 202, response.content
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, WAIT)
        await sync_to_async(writer.stop)()
        row = await Operation.objects.aget(pk=operation_id)
        assert row.status == OperationStatus.CANCELLED
        again = await sync_to_async(alice.client.post)(f"/api/runs/{operation_id}/cancel/")
        assert again.status_code == 409
    finally:
        call.cancel()
        await sync_to_async(writer.stop)()
