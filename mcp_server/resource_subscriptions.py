"""A session's resource subscriptions: resources/subscribe, resources/unsubscribe, the URIs of
its `subscriptions/listen` requests, and the notifications/resources/updated its runs'
changes become.

A subscription to a run's summary or error log watches the run wherever it runs: a
`resource.watch` goes to every runner, the one running it sends `resource.updated` (coalesced)
to this connection's channel, and the last one, when the run ends, also comes from history
should that message be lost (the process's Liveness). Other resources are subscribable but
change only with the tenant's files, which are not watched. Each subscriber (the session
itself for resources/subscribe, each listen for its URIs) holds its own URIs; a run is watched
once per connection however many subscribers want it. The session holds at most `limit`
subscriptions of its own (a listen's URIs are bounded when it opens); unsubscribing and
closing stop the watches.

Streamable HTTP's handshake-era session keeps its URIs in its record: an exchange's session
only records them (`deliver=False`), its GET stream's session watches them (`sync`).
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.messages import OperationEvent, OperationFinished
from mcp_server.cluster.session_messages import RunUnwatch, RunUpdated, RunWatch
from mcp_server.operations.lifecycle import ACTIVE_STATUSES
from mcp_server.protocol import methods
from mcp_server.protocol.errors import LIMIT_EXCEEDED, JsonRpcError
from mcp_server.protocol.messages import Request, notification_message
from mcp_server.protocol.resources import resource_not_found, resource_uri_param
from mcp_server.resources.registry import Contents
from mcp_server.resources.runs import errors_uri, run_id_of
from mcp_server.selectors import operation_get
from mcp_server.session_caller import SessionCaller

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness

Send = Callable[[Any], Awaitable[None]]


class Subscriber(Protocol):
    """Who hears of a subscribed resource's updates."""

    async def resource_updated(self, uri: str) -> None:
        """`uri` changed."""


class _Session:
    """The session's own subscriptions (resources/subscribe): plain notifications."""

    def __init__(self, send: Send) -> None:
        self._send = send

    async def resource_updated(self, uri: str) -> None:
        """notifications/resources/updated, as the handshake era has it."""
        params = {"uri": uri}
        await self._send(notification_message(methods.NOTIFICATION_RESOURCES_UPDATED, params))


class ResourceSubscriptions:
    """The subscriptions of one connection and the runs they watch."""

    def __init__(
        self,
        *,
        caller: SessionCaller,
        connection_id: str,
        send: Send,
        read: Callable[[str], Awaitable[Contents]],
        bus: OperationBus,
        limit: int,
        liveness: "Liveness | None" = None,
        listen: Callable[[], None] | None = None,
        deliver: bool = True,
    ) -> None:
        self.caller = caller
        self.connection_id = connection_id
        self._read = read
        self._bus = bus
        self.limit = limit
        self._liveness = liveness
        self._listen = listen
        self._deliver = deliver
        self._own: Subscriber = _Session(send)
        # Each subscriber's URIs, each with the run it watches (None: none, or it has ended).
        self._held: dict[Subscriber, dict[str, UUID | None]] = {}
        self._runs: dict[UUID, set[tuple[Subscriber, str]]] = {}

    @property
    def uris(self) -> list[str]:
        """The session's own subscribed URIs (resources/subscribe), in subscription order."""
        return list(self._held.get(self._own, ()))

    async def subscribe(self, request: Request) -> dict[str, Any]:
        """resources/subscribe: -32002 for a URI the caller has not, -32001 past the bound."""
        uri = resource_uri_param(request.params)
        if uri in self._held.get(self._own, {}):
            return {}
        if len(self._held.get(self._own, {})) >= self.limit:
            raise JsonRpcError(
                LIMIT_EXCEEDED,
                f"At most {self.limit} resource subscriptions per session: unsubscribe first",
                {"limit": "subscriptions_per_session", "max": self.limit},
            )
        await self.add(uri, self._own)
        return {}

    async def unsubscribe(self, request: Request) -> dict[str, Any]:
        """resources/unsubscribe (a URI not subscribed is no error: nothing changes)."""
        await self.remove(resource_uri_param(request.params), self._own)
        return {}

    async def add(self, uri: str, subscriber: Subscriber) -> None:
        """Subscribe `subscriber` to `uri`: -32002 (nothing changed) for a URI the caller has
        not."""
        held = self._held.get(subscriber, {})
        if uri in held:
            return
        run_id = run_id_of(uri)
        if run_id is None:
            await self._read(uri)  # it exists for this caller, or -32002
            self._held.setdefault(subscriber, {})[uri] = None
            return
        await self.caller.settle()  # a run this process has just recorded is found
        run = await self.caller.db(operation_get)(
            principal=self.caller.principal(), operation_id=run_id
        )
        if run is None:
            raise resource_not_found(uri)
        active = run.status in ACTIVE_STATUSES and self._deliver
        self._held.setdefault(subscriber, {})[uri] = run.pk if active else None
        if active:
            await self._watch(run.pk, subscriber, uri)

    async def remove(self, uri: str, subscriber: Subscriber) -> None:
        """Unsubscribe `subscriber` from `uri` (nothing happens when it was not subscribed)."""
        held = self._held.get(subscriber, {})
        key = held.pop(uri, None)
        if not held:
            self._held.pop(subscriber, None)
        if key is not None and key in self._runs:
            self._runs[key].discard((subscriber, uri))
            if not self._runs[key]:
                await self._unwatch(key)

    async def remove_all(self, subscriber: Subscriber) -> None:
        """Unsubscribe `subscriber` from everything (a listen ended)."""
        for uri in list(self._held.get(subscriber, ())):
            await self.remove(uri, subscriber)

    def restore(self, uris: Iterable[str]) -> None:
        """The session's own subscriptions as an HTTP session's record holds them, taken as
        they are (checked when they were made), not watched: for an exchange that only
        records a change."""
        held: dict[str, UUID | None] = dict.fromkeys(uris)
        if held:
            self._held[self._own] = held

    async def sync(self, uris: Iterable[str]) -> None:
        """Make the session's own subscriptions `uris` (those an HTTP session's record holds):
        new ones watched, dropped ones unwatched; one the caller no longer has is skipped."""
        wanted = list(dict.fromkeys(uris))[: self.limit]
        for uri in self.uris:
            if uri not in wanted:
                await self.remove(uri, self._own)
        for uri in wanted:
            try:
                await self.add(uri, self._own)
            except JsonRpcError:
                continue

    async def _watch(self, key: UUID, subscriber: Subscriber, uri: str) -> None:
        pairs = self._runs.setdefault(key, set())
        pairs.add((subscriber, uri))
        if len(pairs) > 1:
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
        pairs = self._runs.get(update.id)
        if not pairs:
            return
        pairs = set(pairs)
        if update.ended:
            for subscriber, uri in pairs:
                held = self._held.get(subscriber)
                if held is not None and uri in held:
                    held[uri] = None
            await self._unwatch(update.id, tell_runner=False)
        for subscriber, uri in sorted(pairs, key=lambda pair: pair[1]):
            if uri == errors_uri(update.id) and not (update.errors or update.ended):
                continue
            await subscriber.resource_updated(uri)

    async def operation_event(self, event: OperationEvent) -> None:
        """A watched run's end, recovered from history (its message was lost or overtaken)."""
        if isinstance(event, OperationFinished):
            await self.run_updated(RunUpdated(id=event.id, errors=True, ended=True))

    async def close(self) -> None:
        """The connection closed: stop every watch."""
        for key in list(self._runs):
            await self._unwatch(key)
        self._held.clear()
