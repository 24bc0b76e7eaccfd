"""A session's resource subscriptions: resources/subscribe, resources/unsubscribe, and the
notifications/resources/updated its runs' changes become.

A subscription to a run's summary or error log watches the run wherever it runs: a
`resource.watch` goes to every runner, the one running it sends `resource.updated` (coalesced)
to this connection's channel, and the last one, when the run ends, also comes from history
should that message be lost (the process's Liveness). Other resources are subscribable but
change only with the tenant's files, which are not watched. A session holds at most
`limit` subscriptions; unsubscribing and closing stop the watches.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from accounts.principal import Principal
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.database import db_call
from mcp_server.cluster.messages import (
    OperationEvent,
    OperationFinished,
    RunUnwatch,
    RunUpdated,
    RunWatch,
)
from mcp_server.operations.lifecycle import ACTIVE_STATUSES
from mcp_server.protocol import methods
from mcp_server.protocol.errors import LIMIT_EXCEEDED, JsonRpcError
from mcp_server.protocol.messages import Request, notification_message
from mcp_server.protocol.resources import resource_not_found, resource_uri_param
from mcp_server.resources.registry import Contents
from mcp_server.resources.runs import errors_uri, run_id_of
from mcp_server.runtime.limits import SlotKey
from mcp_server.selectors import operation_get

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness

Send = Callable[[Any], Awaitable[None]]


class ResourceSubscriptions:
    """The subscriptions of one connection and the runs they watch."""

    def __init__(
        self,
        *,
        caller: Callable[[], Principal],
        slot_key: Callable[[], SlotKey],
        connection_id: str,
        send: Send,
        read: Callable[[str], Awaitable[Contents]],
        bus: OperationBus,
        limit: int,
        liveness: "Liveness | None" = None,
        listen: Callable[[], None] | None = None,
    ) -> None:
        self._caller = caller
        self._slot_key = slot_key
        self.connection_id = connection_id
        self._send = send
        self._read = read
        self._bus = bus
        self.limit = limit
        self._liveness = liveness
        self._listen = listen
        # Subscribed URIs, each with the run it watches (None: none, or the run has ended).
        self._uris: dict[str, UUID | None] = {}
        self._runs: dict[UUID, set[str]] = {}

    def __len__(self) -> int:
        """How many resources are subscribed."""
        return len(self._uris)

    @property
    def watched(self) -> frozenset[UUID]:
        """The runs whose changes this connection waits for."""
        return frozenset(self._runs)

    async def subscribe(self, request: Request) -> dict[str, Any]:
        """resources/subscribe: -32002 for a URI the caller has not, -32001 past the bound."""
        uri = resource_uri_param(request.params)
        if uri in self._uris:
            return {}
        if len(self._uris) >= self.limit:
            raise JsonRpcError(
                LIMIT_EXCEEDED,
                f"At most {self.limit} resource subscriptions per session: unsubscribe first",
                {"limit": "subscriptions_per_session", "max": self.limit},
            )
        run_id = run_id_of(uri)
        if run_id is None:
            await self._read(uri)  # it exists for this caller, or -32002
            self._uris[uri] = None
            return {}
        find = db_call(operation_get, caller=self._slot_key())
        run = await find(principal=self._caller(), operation_id=run_id)
        if run is None:
            raise resource_not_found(uri)
        active = run.status in ACTIVE_STATUSES
        self._uris[uri] = run.pk if active else None
        if active:
            await self._watch(run.pk, uri)
        return {}

    async def unsubscribe(self, request: Request) -> dict[str, Any]:
        """resources/unsubscribe (a URI not subscribed is no error: nothing changes)."""
        uri = resource_uri_param(request.params)
        key = self._uris.pop(uri, None)
        if key is not None and key in self._runs:
            self._runs[key].discard(uri)
            if not self._runs[key]:
                await self._unwatch(key)
        return {}

    async def _watch(self, key: UUID, uri: str) -> None:
        uris = self._runs.setdefault(key, set())
        uris.add(uri)
        if len(uris) > 1:
            return
        if self._listen is not None:
            self._listen()  # updates arrive on the connection's channel: read it from now on
        if self._liveness is not None:
            self._liveness.watch(key, self)
        await self._bus.to_runners(RunWatch(id=key, channel=self.connection_id))

    async def _unwatch(self, key: UUID, *, tell_runner: bool = True) -> None:
        self._runs.pop(key, None)
        if self._liveness is not None:
            self._liveness.unwatch(key, self)
        if tell_runner:
            await self._bus.to_runners(RunUnwatch(id=key, channel=self.connection_id))

    async def run_updated(self, update: RunUpdated) -> None:
        """A watched run changed: notifications/resources/updated for its subscribed URIs
        (its error log only when its errors changed or it ended)."""
        uris = self._runs.get(update.id)
        if not uris:
            return
        if update.ended:
            for uri in uris:
                self._uris[uri] = None
            await self._unwatch(update.id, tell_runner=False)
        for uri in sorted(uris):
            if uri == errors_uri(update.id) and not (update.errors or update.ended):
                continue
            params = {"uri": uri}
            await self._send(notification_message(methods.NOTIFICATION_RESOURCES_UPDATED, params))

    async def operation_event(self, event: OperationEvent) -> None:
        """A watched run's end, recovered from history (its message was lost or overtaken)."""
        if isinstance(event, OperationFinished):
            await self.run_updated(RunUpdated(id=event.id, errors=True, ended=True))

    async def close(self) -> None:
        """The connection closed: stop every watch."""
        for key in list(self._runs):
            await self._unwatch(key)
        self._uris.clear()
