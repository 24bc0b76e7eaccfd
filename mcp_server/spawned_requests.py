"""A connection's requests that run as their own tasks (`tools/call`, `tasks/result`).

Each is known by its id while it runs, counted against the caller's in-flight bounds
(`runtime/admission.py`), owned by the session's TaskOwner, and cancellable by the client
(`notifications/cancelled`), which then gets no response.
"""

import asyncio
import functools
from collections.abc import Coroutine
from typing import Any

from accounts.limits import TenantLimits
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.owned_tasks import TaskOwner
from mcp_server.protocol.errors import INVALID_REQUEST, LIMIT_EXCEEDED, JsonRpcError, RequestId
from mcp_server.runtime.admission import InFlightLimitReached, InFlightRequests
from mcp_server.runtime.limits import SlotKey

Reply = dict[str, Any] | None


class SpawnedRequests:
    """The spawned requests of one connection, by id."""

    __slots__ = ("_by_client", "_owner", "_running", "admission")

    def __init__(self, *, owner: TaskOwner, admission: InFlightRequests) -> None:
        self._owner = owner
        self.admission = admission
        # A request run in its transport's task (`run_here`) is known by that task.
        self._running: dict[RequestId, asyncio.Task[Any]] = {}
        self._by_client: set[RequestId] = set()

    def __len__(self) -> int:
        """How many are running."""
        return len(self._running)

    def __contains__(self, request_id: object) -> bool:
        """Whether request `request_id` is running."""
        return request_id in self._running

    @property
    def idle(self) -> bool:
        """Whether every spawned request has ended (its done callback may still be due)."""
        # The empty case first: asked after every HTTP request (Exchange.idle).
        return not self._running or all(task.done() for task in self._running.values())

    def task(self, request_id: RequestId) -> "asyncio.Task[Any]":
        """The task of running request `request_id` (KeyError when none runs)."""
        return self._running[request_id]

    @property
    def tasks(self) -> list["asyncio.Task[Any]"]:
        """The tasks of every running request."""
        return list(self._running.values())

    def start(
        self,
        request_id: RequestId,
        run: Coroutine[Any, Any, Reply],
        *,
        key: SlotKey,
        limits: TenantLimits,
        counted: bool = True,
    ) -> "asyncio.Task[Reply]":
        """Run `run` as request `request_id`'s task; JsonRpcError (and `run` never started)
        when that id is already in flight or a bound is reached (`counted` False: a request
        with bounds of its own, e.g. a listen, not counted as in flight)."""
        self._admit(request_id, run, key=key, limits=limits, counted=counted)
        task = self._owner.spawn(run)
        self._running[request_id] = task
        task.add_done_callback(functools.partial(self._ended, request_id, key, counted))
        return task

    async def run_here(
        self,
        request_id: RequestId,
        run: Coroutine[Any, Any, Reply],
        *,
        key: SlotKey,
        limits: TenantLimits,
    ) -> None:
        """Run `run` as request `request_id` in the calling task rather than a task of its
        own (for a request whose transport waits for it alone: an HTTP request's call that
        sends nothing before its reply). Refused as `start` refuses; cancelled as a spawned
        request is (by its client, at the owner's close), which ends only `run`."""
        self._admit(request_id, run, key=key, limits=limits, counted=True)
        task = asyncio.current_task()
        assert task is not None
        self._running[request_id] = task
        try:
            await self._owner.run_here(run)
        finally:
            # At once, not from a done callback: the task goes on with other work, which a
            # late cancel of this request must not reach.
            self._ended(request_id, key, True, task)

    def _admit(
        self,
        request_id: RequestId,
        run: Coroutine[Any, Any, Reply],
        *,
        key: SlotKey,
        limits: TenantLimits,
        counted: bool,
    ) -> None:
        refusal: JsonRpcError | None = None
        if request_id in self._running:
            refusal = JsonRpcError(
                INVALID_REQUEST, f"Request id {request_id!r} is already in flight"
            )
        elif counted:
            try:
                self.admission.admit(key, limits)
            except InFlightLimitReached as exc:
                refusal = JsonRpcError(LIMIT_EXCEEDED, str(exc), exc.data)
        if refusal is not None:
            run.close()
            raise refusal

    def _ended(
        self, request_id: RequestId, key: SlotKey, counted: bool, task: "asyncio.Task[Any]"
    ) -> None:
        if counted:
            self.admission.release(key)
        self._by_client.discard(request_id)
        if self._running.get(request_id) is task:
            del self._running[request_id]

    def cancel_by_client(self, request_id: Any) -> None:
        """The client cancelled `request_id` (ignored when no such request runs)."""
        valid = isinstance(request_id, str | int) and not isinstance(request_id, bool)
        task = self._running.get(request_id) if valid else None
        if task is not None:
            self._by_client.add(request_id)
            task.cancel(Stop(StopReason.CLIENT_CANCEL))

    def cancelled_by_client(self, request_id: RequestId) -> bool:
        """Whether the client itself cancelled `request_id` (then it gets no response)."""
        return request_id in self._by_client


def batch_replies(handled: "list[Reply | asyncio.Task[Reply]]") -> list[dict[str, Any]]:
    """The responses of a batch whose spawned requests have ended, in order; a request the
    client cancelled gets none, as outside a batch."""
    replies: list[dict[str, Any]] = []
    for item in handled:
        if isinstance(item, asyncio.Task):
            item = None if item.cancelled() or item.exception() else item.result()
        if item is not None:
            replies.append(item)
    return replies
