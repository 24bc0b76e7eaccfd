"""A session's durable tasks, in both vocabularies over the same Operation rows.

2025-11-25 (the handshake era): tools/call with `params.task`, tasks/get, tasks/list,
tasks/cancel and tasks/result; the connection that starts or waits for a task listens to it
(progress, logs, notifications/tasks/status). The 2026-07-28 tasks extension: a tools/call
the server made a task answers a CreateTaskResult, then tasks/get (a DetailedTask),
tasks/update and tasks/cancel, each only for a request that declares the extension; nobody
listens to such a task on the request's connection (the extension has no progress or logs
for tasks). Every query is scoped by the caller; the tasks run wherever the executor runs
them and outlive the connection that started them."""

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.utils import timezone

from accounts.principal import Principal
from mcp_server.cluster.database import db_call
from mcp_server.cluster.messages import OperationFinished
from mcp_server.executors import Executor, new_operation_id
from mcp_server.identity import ServerIdentity
from mcp_server.listener import ConnectionListener
from mcp_server.operations.lifecycle import (
    ACTIVE_STATUSES,
    OperationStatus,
    TaskView,
    detailed_task,
    task_outcome,
    task_view,
)
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.input_required import INPUT_RESPONSES, check_response, input_responses
from mcp_server.protocol.messages import Request
from mcp_server.protocol.modern import RESULT_TASK
from mcp_server.protocol.pagination import decode_key_cursor, encode_key_cursor
from mcp_server.protocol.progress_tokens import progress_token
from mcp_server.protocol.tasks import (
    declares_extension,
    extension_required,
    task_id_param,
)
from mcp_server.runtime.limits import SlotKey
from mcp_server.runtime.runner import CallRequest
from mcp_server.selectors import task_get, task_page

if TYPE_CHECKING:
    from mcp_server.models import Operation


class TaskRequests:
    """The task requests of one connection."""

    def __init__(
        self,
        *,
        caller: Callable[[], Principal],
        slot_key: Callable[[], SlotKey],
        identity: ServerIdentity,
        executor: Executor,
        listener: ConnectionListener,
    ) -> None:
        self._caller = caller
        self._slot_key = slot_key
        self.identity = identity
        self.executor = executor
        self.listener = listener

    def _as_task(self, call: CallRequest, ttl: int) -> tuple[CallRequest, TaskView]:
        """`call` made a task (a fresh id, queued now, its TTL), and how it shows."""
        now = timezone.now()
        key = new_operation_id()
        request = dataclasses.replace(
            call, operation_id=key, queued_at=now, is_task=True, task_ttl=ttl
        )
        view = TaskView(
            task_id=str(key),
            operation_status=OperationStatus.QUEUED,
            created_at=now,
            last_updated_at=now,
            ttl=ttl,
            poll_interval=self.identity.task_poll_interval,
        )
        return request, view

    async def start(self, call: CallRequest, ttl: int) -> dict[str, Any]:
        """Record `call` as a task and start it; the CreateTaskResult."""
        request, view = self._as_task(call, ttl)
        assert request.operation_id is not None
        self.listener.attach(request.operation_id, call.progress_token, view)
        await self.executor.start_task(request, listener=self.listener.connection_id)
        return {"task": view.as_task()}

    async def create(self, call: CallRequest, ttl: int) -> dict[str, Any]:
        """Record `call` as a tasks-extension task and start it; its CreateTaskResult (flat,
        `resultType: "task"`), answered once the row is written: a tasks/get on any process
        finds it."""
        request, view = self._as_task(call, ttl)
        await self.executor.start_task(request, listener=None)
        return {"resultType": RESULT_TASK, **view.as_extension_task()}

    async def find_own(self, task_id: str) -> "Operation | None":
        """The caller's task `task_id`, or None (another user's task is an unknown one)."""
        find = db_call(task_get, caller=self._slot_key())
        return await find(principal=self._caller(), task_id=task_id)

    async def _find(self, params: dict[str, Any]) -> "Operation":
        task_id = task_id_param(params)
        operation = await self.find_own(task_id)
        if operation is None:
            raise invalid_params(f"Unknown task: {task_id}")
        return operation

    def view_of(self, operation: "Operation") -> TaskView:
        """How task `operation` shows."""
        return task_view(operation, self.identity.task_poll_interval)

    async def get(self, request: Request) -> dict[str, Any]:
        """tasks/get: the task as history has it."""
        return self.view_of(await self._find(request.params)).as_task()

    async def list(self, request: Request) -> dict[str, Any]:
        """tasks/list: the caller's tasks, newest first, a page at a time."""
        cursor = request.params.get("cursor")
        before = None
        if cursor is not None:
            try:
                before = UUID(decode_key_cursor(cursor))
            except ValueError:
                raise invalid_params("Invalid cursor") from None
        size = self.identity.tasks_page_size
        page = db_call(task_page, caller=self._slot_key())
        rows = await page(principal=self._caller(), before=before, size=size)
        result: dict[str, Any] = {"tasks": [self.view_of(r).as_task() for r in rows[:size]]}
        if len(rows) > size:
            result["nextCursor"] = encode_key_cursor(str(rows[size - 1].pk))
        return result

    async def cancel(self, request: Request) -> dict[str, Any]:
        """tasks/cancel: mark the task cancelled and stop it wherever it runs."""
        operation = await self._find(request.params)
        view = self.view_of(operation)
        if not view.is_terminal:
            changed = await self.executor.cancel(
                operation.pk, as_task=True, caller=self._slot_key()
            )
            view = self.view_of(await self._find(request.params))
            if changed:
                return view.as_task()
        raise invalid_params(f"Task {view.task_id} has already ended ({view.status})")

    async def result(self, request: Request) -> dict[str, Any]:
        """tasks/result: wait for the task's outcome, streaming its progress meanwhile."""
        operation = await self._find(request.params)
        view = self.view_of(operation)
        if view.is_terminal:
            return task_outcome(view.task_id, OperationFinished.from_row(operation))
        token = progress_token(request.params)
        attachment = self.listener.attach(
            operation.pk, token if token is not None else operation.progress_token, view
        )
        await self.executor.attach(operation.pk, self.listener.connection_id)
        # It may have ended between the read and the attach: look once more.
        operation = await self._find(request.params)
        if operation.status not in ACTIVE_STATUSES and not attachment.outcome.done():
            await self.listener.operation_event(OperationFinished.from_row(operation))
        finished = await asyncio.shield(attachment.outcome)
        return task_outcome(view.task_id, finished)

    # --- the tasks extension (2026-07-28) -------------------------------------------------
    def _check_extension(self, request: Request) -> None:
        """-32021 for a request that does not declare the tasks extension."""
        if request.meta is None or not declares_extension(request.meta.client_capabilities):
            raise extension_required()

    async def detailed(self, request: Request) -> dict[str, Any]:
        """tasks/get: the task as history has it, its result or error inlined once ended."""
        self._check_extension(request)
        operation = await self._find(request.params)
        view = self.view_of(operation)
        ended = OperationFinished.from_row(operation) if view.is_terminal else None
        return detailed_task(view, ended)

    async def update(self, request: Request) -> dict[str, Any]:
        """tasks/update: hand the input responses to the task's open questions, wherever it
        runs (responses to keys it is not asking are ignored; -32602 for one that is not a
        result of the request of its key, as for an input round); an empty acknowledgement."""
        self._check_extension(request)
        operation = await self._find(request.params)
        if INPUT_RESPONSES not in request.params:
            raise invalid_params("tasks/update needs inputResponses")
        responses = input_responses(request.params)
        for key, asked in (operation.input_requests or {}).items():
            if key in responses:
                check_response(key, asked["method"], responses[key])
        if responses and operation.status in ACTIVE_STATUSES:
            await self.executor.answer(operation.pk, responses)
        return {}

    async def cancel_cooperatively(self, request: Request) -> dict[str, Any]:
        """tasks/cancel: mark the task cancelled and stop it wherever it runs; an empty
        acknowledgement, also for a task that has already ended."""
        self._check_extension(request)
        operation = await self._find(request.params)
        if operation.status in ACTIVE_STATUSES:
            await self.executor.cancel(operation.pk, as_task=True, caller=self._slot_key())
        return {}
