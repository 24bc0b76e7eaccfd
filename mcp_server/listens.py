"""A connection's `subscriptions/listen` requests (2026-07-28): each an open stream of the
notifications it asked for, every message tagged with its subscription id.

A listen runs as one of the session's spawned requests (its own task, cancellable by
`notifications/cancelled` or by closing the connection, which send it nothing more). It
sends its acknowledgement first, then, until it ends, what it asked for: list changes (the
session's `tenant_changed`), updates of its resources (the session's ResourceSubscriptions,
fed from whichever process runs the run), and task states (the `TaskWatcher` seam, below).
Ended by the server (shutdown), it gets its `{resultType: "complete"}` response.

Bounds: listens per connection and per user (counted across this process, `ListenCounts`),
URIs and task ids per listen.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from mcp_server.protocol import methods
from mcp_server.protocol.errors import LIMIT_EXCEEDED, JsonRpcError, RequestId
from mcp_server.protocol.messages import Request
from mcp_server.protocol.subscriptions import (
    ListenFilter,
    acknowledgement,
    listen_ended,
    parse_listen_filter,
    tagged,
)
from mcp_server.protocol.tasks import declares_extension, extension_required
from mcp_server.resource_subscriptions import ResourceSubscriptions

Send = Callable[[Any], Awaitable[None]]


class TaskWatcher(Protocol):
    """The tasks extension's side of a listen (installed by the task code): what it needs to
    push `notifications/tasks` for a listen's `taskIds`."""

    async def watch(self, listen: "Listen", task_ids: tuple[str, ...]) -> tuple[str, ...]:
        """Start telling `listen` of these tasks' changes (by `listen.task_changed`); the ids
        honoured (the caller's tasks), in order."""

    async def unwatch(self, listen: "Listen") -> None:
        """`listen` ended: tell it nothing more."""


class ListenCounts:
    """Open listens per user in this process (one per process, shared by its sessions)."""

    def __init__(self) -> None:
        self._by_user: dict[int, int] = {}

    def count(self, user_id: int) -> int:
        """Listens `user_id` holds open here."""
        return self._by_user.get(user_id, 0)

    def add(self, user_id: int) -> None:
        """One more listen of `user_id`."""
        self._by_user[user_id] = self.count(user_id) + 1

    def release(self, user_id: int) -> None:
        """A listen of `user_id` ended."""
        left = self.count(user_id) - 1
        if left > 0:
            self._by_user[user_id] = left
        else:
            self._by_user.pop(user_id, None)


class Listen:
    """One open listen: its id, what it honours, and its messages until it ends."""

    def __init__(self, subscription_id: RequestId, send: Send, asked: ListenFilter) -> None:
        self.subscription_id = subscription_id
        # What it asked for until the acknowledgement settles what is honoured.
        self.honoured = asked
        self._send = send
        # Messages due before the acknowledgement went out (at most one per kind and URI or
        # task: a newer one replaces the older), sent right after it.
        self._early: dict[tuple[str, str], dict[str, Any]] | None = {}
        self.ended = asyncio.Event()

    async def notify(self, method: str, params: dict[str, Any], *, about: str = "") -> None:
        """Send one notification of this listen (`about`: the URI or task it concerns)."""
        message = tagged(self.subscription_id, method, params)
        if self._early is not None:
            self._early[(method, about)] = message
            return
        await self._send(message)

    async def acknowledge(self, honoured: ListenFilter) -> None:
        """Send the acknowledgement, then what came before it."""
        self.honoured = honoured
        early, self._early = self._early or {}, None
        await self._send(acknowledgement(self.subscription_id, honoured))
        for message in early.values():
            await self._send(message)

    async def list_changed(self, method: str) -> None:
        """A list changed: told when this listen asked for `method`."""
        if self.honoured.wants(method):
            await self.notify(method, {})

    async def resource_updated(self, uri: str) -> None:
        """A subscribed resource changed (as a ResourceSubscriptions subscriber)."""
        await self.notify(methods.NOTIFICATION_RESOURCES_UPDATED, {"uri": uri}, about=uri)

    async def task_changed(self, task: dict[str, Any]) -> None:
        """A watched task's state (a DetailedTask): `notifications/tasks` when this listen
        honours its `taskId`. The one call the task side makes."""
        task_id = task.get("taskId")
        if isinstance(task_id, str) and task_id in self.honoured.task_ids:
            await self.notify(methods.NOTIFICATION_TASKS, task, about=task_id)

    def end(self) -> None:
        """End it gracefully: its request answers `{resultType: "complete"}`."""
        self.ended.set()


class Listens:
    """The open listens of one connection."""

    def __init__(
        self,
        *,
        send: Send,
        subscriptions: ResourceSubscriptions,
        counts: ListenCounts,
        per_connection: int,
        per_user: int,
        max_entries: int,
        task_watcher: TaskWatcher | None = None,
    ) -> None:
        self._send = send
        self._subscriptions = subscriptions
        self._counts = counts
        self.per_connection = per_connection
        self.per_user = per_user
        self.max_entries = max_entries
        self._open: dict[RequestId, Listen] = {}
        # The tasks extension's side (SessionFeatures.listens); None: `taskIds` not honoured.
        self.task_watcher = task_watcher

    def __len__(self) -> int:
        """How many are open."""
        return len(self._open)

    async def listen(self, request: Request, user_id: int) -> dict[str, Any]:
        """Serve one `subscriptions/listen` until it ends: its acknowledgement, then its
        notifications; the graceful end's result. -32602 for a malformed filter, -32001 past
        a bound, -32021 for task ids without the tasks extension."""
        asked = parse_listen_filter(request.params, max_entries=self.max_entries)
        capabilities = request.meta.client_capabilities if request.meta is not None else {}
        if asked.task_ids and not declares_extension(capabilities):
            raise extension_required()
        self._admit(user_id)
        listen = Listen(request.id, self._send, asked)
        self._open[request.id] = listen
        self._counts.add(user_id)
        try:
            await listen.acknowledge(await self._honour(listen, asked))
            await listen.ended.wait()
            return listen_ended(request.id)
        finally:
            del self._open[request.id]
            self._counts.release(user_id)
            await self._subscriptions.remove_all(listen)
            if self.task_watcher is not None:
                await self.task_watcher.unwatch(listen)

    def _admit(self, user_id: int) -> None:
        if len(self._open) >= self.per_connection:
            raise _limit("connection", "listens_per_connection", self.per_connection)
        if self._counts.count(user_id) >= self.per_user:
            raise _limit("user", "listens_per_user", self.per_user)

    async def _honour(self, listen: Listen, asked: ListenFilter) -> ListenFilter:
        uris = []
        for uri in asked.resource_uris:
            try:
                await self._subscriptions.add(uri, listen)
            except JsonRpcError:
                continue  # not the caller's resource: not honoured (left out of the ack)
            uris.append(uri)
        task_ids: tuple[str, ...] = ()
        if asked.task_ids and self.task_watcher is not None:
            task_ids = await self.task_watcher.watch(listen, asked.task_ids)
        return ListenFilter(
            list_changes=asked.list_changes, resource_uris=tuple(uris), task_ids=task_ids
        )

    async def list_changed(self, changed: list[str]) -> None:
        """These lists changed: each listen hears of those it asked for."""
        for listen in list(self._open.values()):
            for method in changed:
                await listen.list_changed(method)

    def end_all(self) -> list[RequestId]:
        """End every listen gracefully; their request ids."""
        for listen in self._open.values():
            listen.end()
        return list(self._open)


def _limit(scope: str, name: str, bound: int) -> JsonRpcError:
    return JsonRpcError(
        LIMIT_EXCEEDED,
        f"Too many open subscriptions/listen for this {scope} (at most {bound}): end one first",
        {"limit": name, "scope": scope, "maximum": bound},
    )
