"""Tools called as durable tasks (MCP 2025-11-25): create, follow, re-attach after drops, cancel.

`tools/call` with `params.task` answers at once with a task. `tasks/result` then waits for the
task's end while the server sends its progress under the token the request names. The task
lives on the server, not in the connection, so after a drop the runner reconnects (the same
backoff as for plain calls) and sends `tasks/result` again on the new connection: the progress
goes on and the result arrives. Ctrl-C cancels the task with `tasks/cancel`; when only
following a task (`mcp-ws tasks result ID`), Ctrl-C stops following and leaves it running.

One progress token serves the whole task: the id of the `tools/call` that created it (also the
run's `request_id` in the history), sent again with every `tasks/result`. Progress that does not
rise (the server repeats where it was after a re-attach) is dropped, so what the renderer sees
rises strictly, as for a plain call.
"""

import asyncio
import contextlib
import enum
import math
import time
from dataclasses import dataclass
from typing import Protocol

from mcp_server.cli.calls import (
    CANCEL_REASON,
    CallEvents,
    CallOutcome,
    Cancelled,
    OutcomeKind,
    ToolCall,
    outcome_of,
    until_cancelled,
)
from mcp_server.cli.reconnect import ReconnectFailed
from mcp_server.cli.session import ClientSession
from mcp_server.client.session import (
    AuthenticationRefused,
    ConnectError,
    ConnectionLost,
    JsonObject,
    McpConnection,
    RpcError,
)

# tasks/get, tasks/list and tasks/cancel are answered at once; this bounds a server that hangs.
REQUEST_TIMEOUT = 30.0
# Ctrl-C: how long to wait for the task's creation to be confirmed, and for tasks/cancel.
CANCEL_TIMEOUT = 10.0
TASK_SUPPORT_VALUES = ("required", "optional", "forbidden")
CREATION_LOST = (
    "the connection dropped before the server confirmed the task, so it may or may not have "
    "been created: see `mcp-ws tasks list` (or pass --retry to create it again after "
    "reconnecting)"
)


def task_support(tool: JsonObject | None) -> str:
    """A tool definition's `execution.taskSupport`; "forbidden" when it says nothing."""
    execution = tool.get("execution") if tool else None
    support = execution.get("taskSupport") if isinstance(execution, dict) else None
    return support if support in TASK_SUPPORT_VALUES else "forbidden"


def runs_as_task(tool: JsonObject | None, *, requested: bool) -> bool:
    """Whether to call `tool` as a task: when asked (--task, --detach) or when it requires one."""
    return requested or task_support(tool) == "required"


def ttl_milliseconds(seconds: float | None) -> int | None:
    """A --ttl in seconds as the protocol's milliseconds (at least 1)."""
    if seconds is None:
        return None
    return max(1, round(seconds * 1000))


class Following(enum.Enum):
    """What Ctrl-C does while the runner waits for a task's result."""

    CANCEL_TASK = "cancel"  # `mcp-ws call --task`: the user's call, stopped with tasks/cancel
    LEAVE_RUNNING = "leave"  # `mcp-ws tasks result`: stop following; the task goes on


class TaskEvents(CallEvents, Protocol):
    """What a renderer is told while a task runs, beyond a plain call's events."""

    def task_created(self, task: JsonObject) -> None:
        """The server created the task (its Task object)."""

    def attached(self, *, task_id: str, request_id: str, again: bool) -> None:
        """A `tasks/result` was sent (`again`: on a new connection, after a drop)."""

    def task_status(self, task: JsonObject) -> None:
        """A `notifications/tasks/status` of the task arrived."""


class TaskReconnectFailed(ReconnectFailed):
    """Reconnection gave up while following a task, which was left on the server."""


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How to call a tool as a task."""

    ttl_ms: int | None = None  # None: the server's default
    detach: bool = False  # create it and return at once


def task_call_params(call: ToolCall, token: str, ttl_ms: int | None) -> JsonObject:
    """The params of a `tools/call` that creates a task reporting progress under `token`."""
    return {
        "name": call.name,
        "arguments": call.arguments,
        "task": {} if ttl_ms is None else {"ttl": ttl_ms},
        "_meta": {"progressToken": token},
    }


def created_task(result: JsonObject) -> JsonObject | None:
    """The Task of a CreateTaskResult; None when the server answered with a plain result."""
    task = result.get("task")
    if isinstance(task, dict) and isinstance(task.get("taskId"), str):
        return task
    return None


def how_it_ended(exc: RpcError) -> str | None:
    """The task status a `tasks/result` error names (cancelled, interrupted, ...), if any."""
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("taskId"), str):
        status = data.get("status")
        return status if isinstance(status, str) else "failed"
    return None


async def cancel_task(connection: McpConnection, task_id: str) -> JsonObject:
    """`tasks/cancel`; the task as the server now has it (RpcError -32602 if it had ended)."""
    return await asyncio.wait_for(
        connection.request("tasks/cancel", {"taskId": task_id}), REQUEST_TIMEOUT
    )


class TaskCallRunner:
    """Runs one tool call as a task, or follows an existing task, to its outcome."""

    def __init__(
        self,
        session: ClientSession,
        events: TaskEvents,
        *,
        retries: int = 0,
        options: TaskOptions | None = None,
    ) -> None:
        self._session = session
        self._events = events
        self._retries = retries
        self._options = options or TaskOptions()
        self._high_water = -math.inf

    async def run(self, call: ToolCall, cancel: asyncio.Event) -> CallOutcome:
        """Create the task, then follow it to its outcome through drops (or detach from it).

        With retries, a task the server reports interrupted is created again, as is one whose
        creation the connection dropped before it was confirmed.
        """
        started = time.monotonic()
        attempt = 1
        request_id = ""
        self._session.on_notice = self._events.notice
        try:
            connection = await until_cancelled(self._session.start(), cancel)
            while True:
                request_id = connection.new_request_id()
                self._high_water = -math.inf
                self._session.subscribe_progress(request_id, self._progress)
                self._events.started(tool=call.name, request_id=request_id, attempt=attempt)
                try:
                    result = await self._create(connection, call, request_id, cancel)
                except ConnectionLost as lost:
                    self._session.unsubscribe_progress(request_id)
                    self._events.connection_lost(reason=str(lost))
                    if attempt > self._retries:
                        return outcome_of(
                            OutcomeKind.INTERRUPTED, request_id, started, message=CREATION_LOST
                        )
                    connection = await until_cancelled(self._session.reconnect(str(lost)), cancel)
                    attempt += 1
                    continue
                task = created_task(result)
                if task is None:  # a server that ignores `task` ran it as a plain call
                    return outcome_of(OutcomeKind.COMPLETED, request_id, started, result)
                task_id = str(task["taskId"])
                self._events.task_created(task)
                if cancel.is_set():  # Ctrl-C while the server was creating it
                    return await self._cancelled(task_id, request_id, started)
                if self._options.detach:
                    return outcome_of(
                        OutcomeKind.DETACHED,
                        request_id,
                        started,
                        message=f"task {task_id} is {task.get('status', 'working')}",
                        task_id=task_id,
                        status=str(task.get("status", "working")),
                    )
                outcome = await self._follow(
                    task_id, request_id, cancel, started, Following.CANCEL_TASK
                )
                self._session.unsubscribe_progress(request_id)
                if outcome.kind is not OutcomeKind.INTERRUPTED or attempt > self._retries:
                    return outcome
                attempt += 1
                connection = await until_cancelled(self._session.start(), cancel)
        except Cancelled:
            return outcome_of(OutcomeKind.CANCELLED, request_id, started, message=CANCEL_REASON)
        finally:
            self._session.unsubscribe_progress(request_id)
            await self._session.close()

    async def follow(self, task_id: str, cancel: asyncio.Event) -> CallOutcome:
        """Attach to an existing task and wait for its outcome through drops.

        Ctrl-C stops following and leaves the task running.
        """
        started = time.monotonic()
        token = ""
        self._session.on_notice = self._events.notice
        try:
            connection = await until_cancelled(self._session.start(), cancel)
            token = connection.new_request_id()
            self._session.subscribe_progress(token, self._progress)
            return await self._follow(task_id, token, cancel, started, Following.LEAVE_RUNNING)
        except Cancelled:
            return outcome_of(
                OutcomeKind.CANCELLED,
                token,
                started,
                message="stopped before attaching (Ctrl-C)",
                task_id=task_id,
            )
        finally:
            self._session.unsubscribe_progress(token)
            await self._session.close()

    def _progress(self, params: JsonObject) -> None:
        value = params.get("progress")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value <= self._high_water:
                return
            self._high_water = value
        self._events.progress(params)

    async def _create(
        self, connection: McpConnection, call: ToolCall, request_id: str, cancel: asyncio.Event
    ) -> JsonObject:
        """Send the creating `tools/call`; its result (a CreateTaskResult, normally).

        Ctrl-C does not abandon the request: the server answers at once, and the task it
        created must be cancelled. Only when no answer comes in time is the request cancelled
        (and Cancelled raised): a server that ignored `task` may be running it as a plain call.
        """
        params = task_call_params(call, request_id, self._options.ttl_ms)
        request = asyncio.ensure_future(
            connection.request("tools/call", params, request_id=request_id)
        )
        try:
            return await until_cancelled(asyncio.shield(request), cancel)
        except Cancelled:
            pass
        try:
            return await asyncio.wait_for(asyncio.shield(request), CANCEL_TIMEOUT)
        except (TimeoutError, ConnectionLost, RpcError):
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)
            connection.forget(request_id)
            with contextlib.suppress(ConnectionLost):
                await connection.notify(
                    "notifications/cancelled", {"requestId": request_id, "reason": CANCEL_REASON}
                )
            raise Cancelled from None

    async def _follow(
        self,
        task_id: str,
        token: str,
        cancel: asyncio.Event,
        started: float,
        on_ctrl_c: Following,
    ) -> CallOutcome:
        """`tasks/result` until the outcome arrives, again on a new connection after each drop."""
        self._session.subscribe_task_status(task_id, self._events.task_status)
        params: JsonObject = {"taskId": task_id, "_meta": {"progressToken": token}}
        again = False
        try:
            while True:
                connection = self._session.connection
                request_id = connection.new_request_id()
                self._events.attached(task_id=task_id, request_id=request_id, again=again)
                try:
                    result = await until_cancelled(
                        connection.request("tasks/result", params, request_id=request_id), cancel
                    )
                except ConnectionLost as lost:
                    self._events.connection_lost(reason=str(lost))
                    try:
                        await until_cancelled(self._session.reconnect(str(lost)), cancel)
                    except ReconnectFailed as exc:
                        raise TaskReconnectFailed(
                            f"{exc}; task {task_id} was left on the server (it goes on unless "
                            f"the process running it stopped): `mcp-ws tasks result {task_id}` "
                            "re-attaches to it, or says how it ended"
                        ) from None
                    again = True
                    continue
                except RpcError as exc:
                    status = how_it_ended(exc)
                    if status is None:
                        raise
                    return self._ended(task_id, token, started, status, exc)
                return outcome_of(OutcomeKind.COMPLETED, token, started, result, task_id=task_id)
        except Cancelled:
            if on_ctrl_c is Following.CANCEL_TASK:
                return await self._cancelled(task_id, token, started)
            return outcome_of(
                OutcomeKind.CANCELLED,
                token,
                started,
                message=(
                    f"stopped following (Ctrl-C); task {task_id} goes on running: "
                    f"`mcp-ws tasks result {task_id}` re-attaches, "
                    f"`mcp-ws tasks cancel {task_id}` stops it"
                ),
                task_id=task_id,
            )
        finally:
            self._session.unsubscribe_task_status(task_id)

    @staticmethod
    def _ended(task_id: str, token: str, started: float, status: str, exc: RpcError) -> CallOutcome:
        """The outcome of a task whose `tasks/result` says it ended without a result."""
        if status == "interrupted":
            kind = OutcomeKind.INTERRUPTED
            message = (
                f"task {task_id} was interrupted on the server: the process running it stopped "
                f"before it ended ({exc.message}); run it again (or pass --retry to re-run it "
                "automatically)"
            )
        elif status == "cancelled":
            kind = OutcomeKind.FAILED
            message = (
                f"task {task_id} was cancelled on the server (by tasks/cancel from another "
                f"client, or the REST API): {exc.message}"
            )
        else:
            kind = OutcomeKind.FAILED
            message = f"task {task_id} ended without a result ({status}): {exc.message}"
        return outcome_of(kind, token, started, message=message, task_id=task_id, status=status)

    async def _cancelled(self, task_id: str, request_id: str, started: float) -> CallOutcome:
        """Ctrl-C on a task: `tasks/cancel` it (on a fresh connection if the last one dropped)."""
        status: str | None = None
        try:
            connection = await asyncio.wait_for(self._session.start(), CANCEL_TIMEOUT)
            task = await cancel_task(connection, task_id)
        except RpcError as exc:
            message = f"{CANCEL_REASON}; task {task_id} was not cancelled: {exc.message}"
        except (AuthenticationRefused, ConnectError, ConnectionLost, TimeoutError) as exc:
            reason = str(exc) or "no answer in time"
            message = (
                f"{CANCEL_REASON}; could not cancel task {task_id} ({reason}), it may still be "
                f"running: `mcp-ws tasks cancel {task_id}`"
            )
        else:
            status = str(task.get("status", "cancelled"))
            message = f"{CANCEL_REASON}; task {task_id} is {status}"
        return outcome_of(
            OutcomeKind.CANCELLED,
            request_id,
            started,
            message=message,
            task_id=task_id,
            status=status,
        )
