"""A connection as a listener of operations: where their progress, logs and outcomes arrive.

Operations that report through the cluster (tasks, calls run by workers) send typed events to
the connection's channel; here each becomes the JSON-RPC frame its client gets, with the
client's own progress token, once. Calls run inline send their frames through the same `send`.
"""

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from django.utils import timezone

from mcp_server.client_requests import ClientRequests
from mcp_server.cluster.messages import (
    OperationEvent,
    OperationFinished,
    OperationLog,
    OperationProgress,
)
from mcp_server.operations.lifecycle import TaskView
from mcp_server.owned_tasks import TaskOwner
from mcp_server.protocol import methods
from mcp_server.protocol.messages import notification_message
from mcp_server.protocol.tasks import RELATED_TASK
from mcp_server.runtime.context import CallEvents
from mcp_server.runtime.progress import ProgressReport, progress_frame
from mcp_server.runtime.runner import CallRequest

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness

logger = logging.getLogger(__name__)

Send = Callable[[Any], Awaitable[None]]


class Log(Protocol):
    """Sends a `notifications/message` when the client's level lets it through."""

    async def __call__(
        self,
        level: str,
        data: Any,
        logger_name: str | None,
        task_id: str | None = None,
        rank: int | None = None,
    ) -> None:
        """Send one log message (naming the task it comes from, if any) when `level` passes
        `rank`, its own request's threshold (None: the connection's level)."""


class Detach(Protocol):
    """Stops an operation's events going to a channel (wherever the operation runs)."""

    async def __call__(self, operation_id: UUID, channel: str) -> None:
        """Detach `channel` from the operation."""


@dataclass(slots=True)
class Attachment:
    """This connection's interest in an operation that reports through the cluster."""

    token: str | int | None
    task: TaskView | None
    outcome: "asyncio.Future[OperationFinished]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    high_water: float = -math.inf
    # The log threshold of the request waiting for it (None: the connection's level).
    log_rank: int | None = None


class ConnectionListener:
    """The operations one connection listens to, and the frames their events become."""

    def __init__(
        self,
        *,
        connection_id: str,
        send: Send,
        log: Log,
        owner: TaskOwner,
        detach: Detach | None = None,
        liveness: "Liveness | None" = None,
        listen: Callable[[], None] | None = None,
        client_requests: ClientRequests | None = None,
    ) -> None:
        self.connection_id = connection_id
        # The connection's requests to its client, for calls run inline for it.
        self.client_requests = client_requests
        self.send = send
        self._log = log
        self.owner = owner
        self._detach = detach
        self._liveness = liveness
        # Called before the connection's id is handed out as a listener (the transport then
        # starts reading what is sent to it).
        self._listen = listen
        self._attached: dict[UUID, Attachment] = {}
        self.closed = False

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        """A log message of a call running inline for this connection (CallEvents)."""
        await self._log(level, data, logger_name)

    def events_for(self, call: CallRequest) -> CallEvents:
        """Where the logs of `call`, run inline here, go: this connection at its level, or
        (a 2026-07-28 request) at the threshold the request itself asked for."""
        if call.log_rank is None:
            return self
        return RequestLogs(self._log, call.log_rank)

    @property
    def task_ids(self) -> list[UUID]:
        """The tasks this connection listens to."""
        return [key for key, attachment in self._attached.items() if attachment.task is not None]

    def attach(
        self,
        key: UUID,
        token: str | int | None,
        task: TaskView | None,
        *,
        log_rank: int | None = None,
    ) -> Attachment:
        """Listen to operation `key`: progress with `token`, status changes of `task`, logs
        past `log_rank` (None: the connection's level)."""
        # Events for it arrive on the connection's channel: read it from now on.
        self.listen_to_channel()
        attachment = self._attached.get(key)
        if attachment is None:
            attachment = Attachment(token=token, task=task, log_rank=log_rank)
            self._attached[key] = attachment
            if self._liveness is not None:
                self._liveness.watch(key, self)
        elif token is not None:
            attachment.token = token
        return attachment

    def listen_to_channel(self) -> None:
        """Read the connection's channel from now on (before its name is given out as a
        listener of an operation)."""
        if self._listen is not None:
            self._listen()

    def listens_to(self, key: UUID) -> bool:
        """Whether the connection waits for operation `key` here."""
        return key in self._attached

    def drop(self, key: UUID) -> None:
        """Stop listening to `key` here (its runner is told separately, if at all)."""
        self._attached.pop(key, None)
        if self._liveness is not None:
            self._liveness.unwatch(key, self)

    async def forget(self, key: UUID) -> None:
        """Stop listening to `key`, and tell its runner when it has not ended."""
        attachment = self._attached.get(key)
        if attachment is None:
            return
        self.drop(key)
        if not attachment.outcome.done() and self._detach is not None:
            try:
                await self._detach(key, self.connection_id)
            except Exception:
                logger.debug("could not detach from %s", key, exc_info=True)

    @property
    def idle(self) -> bool:
        """Whether it listens to no operation and has not closed."""
        return not self._attached and not self.closed

    async def close(self) -> None:
        """The connection closed: tasks keep running without it, it stops listening."""
        self.closed = True
        for key in list(self._attached):
            await self.forget(key)

    async def operation_event(self, event: OperationEvent) -> None:
        """An event of an operation this connection listens to (progress, log, outcome)."""
        attachment = self._attached.get(event.id)
        if attachment is None or self.closed:
            return
        task_id = attachment.task.task_id if attachment.task is not None else None
        if isinstance(event, OperationProgress):
            report = ProgressReport(event.progress, event.total, event.message)
            await self._progress(attachment, report)
        elif isinstance(event, OperationLog):
            await self._log(event.level, event.data, event.logger, task_id, attachment.log_rank)
        elif isinstance(event, OperationFinished) and not attachment.outcome.done():
            if event.progress:
                await self._progress(attachment, ProgressReport(event.progress, event.total, None))
            if attachment.task is not None:
                ended = attachment.task.ended(
                    status=event.status,
                    error=event.error,
                    at=event.finished_at or timezone.now(),
                )
                attachment.task = ended
                await self.send(
                    notification_message(methods.NOTIFICATION_TASK_STATUS, ended.as_task())
                )
            attachment.outcome.set_result(event)
            await self.forget(event.id)

    async def _progress(self, attachment: Attachment, report: ProgressReport) -> None:
        if attachment.token is None or report.done <= attachment.high_water:
            return
        attachment.high_water = report.done
        meta = None
        if attachment.task is not None:
            meta = {RELATED_TASK: {"taskId": attachment.task.task_id}}
        await self.send(progress_frame(attachment.token, report, meta))


class RequestLogs:
    """The logs of one call whose request set its own threshold (CallEvents)."""

    __slots__ = ("_log", "_rank")

    def __init__(self, log: Log, rank: int) -> None:
        self._log = log
        self._rank = rank

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        """Send a log message of the call when it passes the request's threshold."""
        await self._log(level, data, logger_name, None, self._rank)
