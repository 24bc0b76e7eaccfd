"""`notifications/tasks` for a connection's listens: the tasks extension's side of
`subscriptions/listen` (the `TaskWatcher` of listens.py).

A listen's `taskIds` are honoured when they are the caller's tasks (another user's id is an
unknown one: left out of the acknowledgement). Each watched task is told at once as it is
(its DetailedTask, sent after the acknowledgement), then as its questions to the client
change (input_required with its inputRequests, working again) and when it ends. Those events
reach the connection's channel from whichever process runs it, because the connection
becomes a listener of the operation, as for `tasks/result`; an end whose message is lost is
read back from history at the next heartbeat round (`Liveness`). The extension has no
progress or logs for tasks: those events are not pushed.
"""

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from django.utils import timezone

from mcp_server.cluster.messages import OperationAsking, OperationEvent, OperationFinished
from mcp_server.executors import Executor
from mcp_server.listener import ConnectionListener
from mcp_server.listens import Listen
from mcp_server.operations.lifecycle import TaskView, detailed_task

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness
    from mcp_server.models import Operation

FindTask = Callable[[str], Awaitable["Operation | None"]]
ShowTask = Callable[["Operation"], TaskView]


@dataclass(slots=True)
class _Watched:
    """A task some listens of this connection watch, as it was when first watched."""

    view: TaskView
    listens: list[Listen] = field(default_factory=list)


class TaskWatch:
    """The tasks one connection's listens watch, and their ends pushed to those listens."""

    def __init__(
        self,
        *,
        find: FindTask,
        show: ShowTask,
        executor: Executor,
        listener: ConnectionListener,
        liveness: "Liveness | None" = None,
    ) -> None:
        self._find = find
        self._show = show
        self._executor = executor
        self._listener = listener
        self._liveness = liveness
        self._watched: dict[UUID, _Watched] = {}

    async def watch(self, listen: Listen, task_ids: tuple[str, ...]) -> tuple[str, ...]:
        """Tell `listen` of these tasks (the caller's own); the ids honoured, in order."""
        honoured = []
        for task_id in task_ids:
            operation = await self._find(task_id)
            if operation is None:
                continue
            honoured.append(task_id)
            view = self._show(operation)
            if view.is_terminal:
                ended = OperationFinished.from_row(operation)
                await listen.task_changed(detailed_task(view, ended))
                continue
            watched = self._watched.get(operation.pk)
            if watched is None:
                watched = self._watched[operation.pk] = _Watched(view)
                await self._follow(operation.pk)
            watched.listens.append(listen)
            await listen.task_changed(detailed_task(view, None))
            # It may have ended before this connection became a listener: look once more.
            again = await self._find(task_id)
            if again is not None and self._show(again).is_terminal:
                await self.operation_event(OperationFinished.from_row(again))
        return tuple(honoured)

    async def unwatch(self, listen: Listen) -> None:
        """`listen` ended: tell it nothing more (and stop listening to tasks nobody watches)."""
        for key, watched in list(self._watched.items()):
            if listen in watched.listens:
                watched.listens.remove(listen)
            if not watched.listens:
                del self._watched[key]
                await self._unfollow(key, ended=False)

    async def operation_event(self, event: OperationEvent) -> None:
        """An event of an operation this connection listens to: a watched task's questions
        and its end are pushed to every listen that watches it (its progress and logs are not
        the extension's)."""
        if isinstance(event, OperationAsking):
            await self._asking(event)
        if not isinstance(event, OperationFinished):
            return
        watched = self._watched.pop(event.id, None)
        if watched is None:
            return
        await self._unfollow(event.id, ended=True)
        ended = watched.view.ended(
            status=event.status, error=event.error, at=event.finished_at or timezone.now()
        )
        task = detailed_task(ended, event)
        for listen in watched.listens:
            await listen.task_changed(task)

    async def _asking(self, event: OperationAsking) -> None:
        watched = self._watched.get(event.id)
        if watched is None or watched.view.input_requests == event.input_requests:
            return
        watched.view = dataclasses.replace(
            watched.view, input_requests=event.input_requests, last_updated_at=timezone.now()
        )
        task = detailed_task(watched.view, None)
        for listen in watched.listens:
            await listen.task_changed(task)

    async def _follow(self, key: UUID) -> None:
        self._listener.listen_to_channel()
        if self._liveness is not None:
            self._liveness.watch(key, self)
        await self._executor.attach(key, self._listener.connection_id)

    async def _unfollow(self, key: UUID, *, ended: bool) -> None:
        if self._liveness is not None:
            self._liveness.unwatch(key, self)
        # The connection may also wait for it otherwise (tasks/result): then it stays attached.
        if not ended and not self._listener.listens_to(key):
            await self._executor.detach(key, self._listener.connection_id)
