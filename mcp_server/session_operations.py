"""The session's side of operations that report through the cluster: durable tasks
(tasks/get, tasks/result, tasks/list, tasks/cancel), calls run by worker processes, and the
events (progress, logs, outcomes) that reach this connection for them."""

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.utils import timezone
from uuid_utils.compat import uuid7

from accounts.principal import Principal
from mcp_server.cluster.database import db_call
from mcp_server.cluster.messages import finished_message
from mcp_server.operations.lifecycle import (
    ACTIVE_STATUSES,
    OperationStatus,
    Stop,
    TaskView,
    call_outcome,
    stop_of,
    task_outcome,
    task_view,
)
from mcp_server.protocol import methods
from mcp_server.protocol.errors import INTERNAL_ERROR, JsonRpcError, invalid_params
from mcp_server.protocol.messages import Request, notification_message
from mcp_server.protocol.pagination import decode_key_cursor, encode_key_cursor
from mcp_server.protocol.progress_tokens import progress_token
from mcp_server.protocol.tasks import RELATED_TASK, task_id_param
from mcp_server.runtime.limits import SlotKey
from mcp_server.runtime.runner import CallRequest
from mcp_server.selectors import task_get, task_page

if TYPE_CHECKING:
    from mcp_server.cluster.node import ClusterNode
    from mcp_server.models import Operation
    from mcp_server.session import ServerIdentity

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Attachment:
    """This connection's interest in an operation that reports through the cluster."""

    token: str | int | None
    task: TaskView | None
    outcome: "asyncio.Future[dict[str, Any]]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    high_water: float = -math.inf


class OperationRequests:
    """Task requests and cluster events of a session (mixed into McpSession, which holds the
    state declared here)."""

    __slots__ = ()

    principal: Principal
    identity: "ServerIdentity"
    node: "ClusterNode | None"
    connection_id: str
    in_worker: bool
    _attached: dict[UUID, Attachment]
    _background: set["asyncio.Task[Any]"]
    _send: Callable[[Any], Awaitable[None]]
    _listen: Callable[[], None] | None

    @property
    def is_closed(self) -> bool:
        """Whether the connection has closed (then nothing more is sent)."""
        raise NotImplementedError

    async def log(
        self, level: str, data: Any, logger_name: str | None, task_id: str | None = None
    ) -> None:
        """Send a `notifications/message` (implemented by the session)."""
        raise NotImplementedError

    async def operation_event(self, message: dict[str, Any]) -> None:
        """An event of an operation this connection listens to (progress, log, outcome)."""
        try:
            key = UUID(str(message.get("id")))
        except ValueError:
            return
        attachment = self._attached.get(key)
        if attachment is None or self.is_closed:
            return
        kind = message.get("type")
        if kind == "operation.progress":
            await self._progress(attachment, message)
        elif kind == "operation.log":
            task_id = attachment.task.task_id if attachment.task is not None else None
            level = message.get("level", "info")
            await self.log(level, message.get("data"), message.get("logger"), task_id)
        elif kind == "operation.finished" and not attachment.outcome.done():
            if message.get("progress"):
                await self._progress(attachment, message)
            if attachment.task is not None:
                finished_at = message.get("finished_at")
                ended = attachment.task.ended(
                    status=message.get("status") or OperationStatus.FAILED,
                    error=message.get("error") or "",
                    at=datetime.fromisoformat(finished_at) if finished_at else timezone.now(),
                )
                attachment.task = ended
                await self._send(
                    notification_message(methods.NOTIFICATION_TASK_STATUS, ended.as_task())
                )
            attachment.outcome.set_result(message)
            await self._forget_operation(key)

    async def _progress(self, attachment: Attachment, message: dict[str, Any]) -> None:
        done = message.get("progress")
        if attachment.token is None or not isinstance(done, int | float):
            return
        if done <= attachment.high_water:
            return
        attachment.high_water = done
        params: dict[str, Any] = {"progressToken": attachment.token, "progress": done}
        if message.get("total") is not None:
            params["total"] = message["total"]
        if message.get("message"):
            params["message"] = message["message"]
        if attachment.task is not None:
            params["_meta"] = {RELATED_TASK: {"taskId": attachment.task.task_id}}
        await self._send(notification_message(methods.NOTIFICATION_PROGRESS, params))

    def _attach(self, key: UUID, token: str | int | None, task: TaskView | None) -> Attachment:
        # Events for it arrive on the connection's channel: read it from now on.
        if self._listen is not None:
            self._listen()
        attachment = self._attached.get(key)
        if attachment is None:
            attachment = Attachment(token=token, task=task)
            self._attached[key] = attachment
            if self.node is not None:
                self.node.watch(key, self)
        elif token is not None:
            attachment.token = token
        return attachment

    async def _forget_operation(self, key: UUID) -> None:
        attachment = self._attached.pop(key, None)
        if attachment is None or self.node is None:
            return
        self.node.unwatch(key, self)
        if not attachment.outcome.done():
            try:
                await self.node.detach(key, self.connection_id)
            except Exception:
                logger.debug("could not detach from %s", key, exc_info=True)

    @property
    def _slot_key(self) -> SlotKey:
        """Who this connection works for: its slots, requests in flight and database share."""
        return SlotKey(self.principal.tenant_id, self.principal.user_id, self.connection_id)

    def _cluster(self) -> "ClusterNode":
        if self.node is None:
            raise JsonRpcError(INTERNAL_ERROR, "Tasks are not available on this connection")
        return self.node

    async def _start_task(self, call: CallRequest, ttl: int) -> dict[str, Any]:
        node = self._cluster()
        now = timezone.now()
        key = UUID(str(uuid7()))
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
        self._attach(key, call.progress_token, view)
        await node.submit(request, listener=self.connection_id, in_worker=self.in_worker)
        return {"task": view.as_task()}

    async def _call_in_worker(self, call: CallRequest) -> dict[str, Any]:
        node = self._cluster()
        key = UUID(str(uuid7()))
        request = dataclasses.replace(call, operation_id=key, queued_at=timezone.now())
        attachment = self._attach(key, call.progress_token, None)
        try:
            await node.submit(request, listener=self.connection_id, in_worker=True)
            message = await attachment.outcome
        except asyncio.CancelledError as exc:
            # The client cancelled or left: stop the work wherever it runs.
            self._in_background(self._cancel_elsewhere(key, stop_of(exc)))
            raise
        finally:
            self._attached.pop(key, None)
            node.unwatch(key, self)
        return call_outcome(message)

    async def _cancel_elsewhere(self, key: UUID, reason: Stop) -> None:
        await self._cluster().request_cancel(
            key, as_task=False, reason=reason, caller=self._slot_key
        )

    def _in_background(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _find_task(self, params: dict[str, Any]) -> "Operation":

        task_id = task_id_param(params)
        find = db_call(task_get, caller=self._slot_key)
        operation = await find(principal=self.principal, task_id=task_id)
        if operation is None:
            raise invalid_params(f"Unknown task: {task_id}")
        return operation

    async def _tasks_get(self, request: Request) -> dict[str, Any]:
        operation = await self._find_task(request.params)
        return task_view(operation, self.identity.task_poll_interval).as_task()

    async def _tasks_list(self, request: Request) -> dict[str, Any]:

        cursor = request.params.get("cursor")
        before = None
        if cursor is not None:
            try:
                before = UUID(decode_key_cursor(cursor))
            except ValueError:
                raise invalid_params("Invalid cursor") from None
        size = self.identity.tasks_page_size
        page = db_call(task_page, caller=self._slot_key)
        rows = await page(principal=self.principal, before=before, size=size)
        interval = self.identity.task_poll_interval
        result: dict[str, Any] = {"tasks": [task_view(r, interval).as_task() for r in rows[:size]]}
        if len(rows) > size:
            result["nextCursor"] = encode_key_cursor(str(rows[size - 1].pk))
        return result

    async def _tasks_cancel(self, request: Request) -> dict[str, Any]:

        operation = await self._find_task(request.params)
        view = task_view(operation, self.identity.task_poll_interval)
        if not view.is_terminal:
            changed = await self._cluster().request_cancel(
                operation.pk, as_task=True, caller=self._slot_key
            )
            operation = await self._find_task(request.params)
            view = task_view(operation, self.identity.task_poll_interval)
            if changed:
                return view.as_task()
        raise invalid_params(f"Task {view.task_id} has already ended ({view.status})")

    async def _tasks_result(self, request: Request) -> dict[str, Any]:

        operation = await self._find_task(request.params)
        view = task_view(operation, self.identity.task_poll_interval)
        if view.is_terminal:
            return task_outcome(view.task_id, finished_message(operation))
        node = self._cluster()
        token = progress_token(request.params)
        attachment = self._attach(
            operation.pk, token if token is not None else operation.progress_token, view
        )
        await node.attach(operation.pk, self.connection_id)
        # It may have ended between the read and the attach: look once more.
        operation = await self._find_task(request.params)
        if operation.status not in ACTIVE_STATUSES and not attachment.outcome.done():
            await self.operation_event(finished_message(operation))
        message = await asyncio.shield(attachment.outcome)
        return task_outcome(view.task_id, message)
