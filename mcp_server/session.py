"""One MCP session per connection: its state, its parts, its lifecycle, in-flight requests.

What it takes from its client and how a request reaches its handler is session_dispatch.py's;
the handlers of its own methods and the tables of every method's are session_methods.py's; its
lifecycle states are session_state.py's; the other features are the parts `SessionFeatures`
makes.

The session knows nothing of WebSockets, HTTP or Django: it is given decoded JSON values and a
`send` coroutine for outgoing messages. The WebSocket transport keeps one for its socket's life;
Streamable HTTP (mcp_server/http_transport/) gives each exchange one and `restore`s it to the
state its session's initialize negotiated (`protocol_version`, `client_capabilities`,
`log_level`), which that transport keeps where every web process can read it; one left
`is_idle` by its request serves the session's next request in the same process.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from accounts.limits import TenantLimits
from accounts.principal import Principal
from mcp_server import session_dispatch
from mcp_server.admission import MessageAllowance
from mcp_server.client_log import ClientLog
from mcp_server.client_pings import ClientPings
from mcp_server.client_requests import ClientRequests
from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.messages import (
    MalformedMessage,
    OperationAsking,
    OperationEvent,
    OperationFinished,
    OperationLog,
    OperationProgress,
)
from mcp_server.cluster.session_messages import RunUpdated
from mcp_server.completion_requests import CompletionRequests
from mcp_server.identity import ServerIdentity
from mcp_server.listener import ConnectionListener
from mcp_server.listens import ListenCounts, Listens
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.owned_tasks import TaskOwner
from mcp_server.prompt_requests import PromptRequests
from mcp_server.protocol import methods
from mcp_server.protocol.lifecycle import shutdown_notice
from mcp_server.protocol.messages import (
    notification_message,
)
from mcp_server.resource_requests import ResourceRequests
from mcp_server.resource_subscriptions import ResourceSubscriptions
from mcp_server.runtime.admission import InFlightRequests
from mcp_server.session_caller import CurrentPrincipal
from mcp_server.session_dispatch import Reply
from mcp_server.session_features import SessionFeatures
from mcp_server.session_state import SessionState
from mcp_server.spawned_requests import SpawnedRequests
from mcp_server.task_requests import TaskRequests
from mcp_server.tools.catalog import ToolCatalog, catalog_for

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness
    from mcp_server.executors import Executor

logger = logging.getLogger(__name__)

Send = Callable[[Any], Awaitable[None]]
CloseTransport = Callable[[int, str], Awaitable[None]]

# How long a shutdown waits for its listens' closing responses to go out.
_LISTEN_GOODBYE_SECONDS = 1.0
# Requests cancelled per turn of the event loop when a connection closes: thousands cancelled
# at once would all end in one turn and hold up every other connection meanwhile.
_CANCEL_BATCH = 64


class McpSession:
    """The MCP state of one connection; feed it decoded messages, it sends the replies."""

    __slots__ = (
        "__weakref__",
        "_caller",
        "_client_log",
        "_client_requests",
        "_close_transport",
        "_message_allowance",
        "_pings",
        "_send",
        "_spawned",
        "_tasks",
        "catalog",
        "client_initialized",
        "connection_id",
        "executor",
        "features",
        "identity",
        "listener",
        "protocol_version",
        "state",
    )

    def __init__(
        self,
        *,
        principal: Principal,
        catalog: ToolCatalog,
        identity: ServerIdentity,
        executor: "Executor",
        admission: InFlightRequests,
        connection_id: str,
        send: Send,
        liveness: "Liveness | None" = None,
        close_transport: CloseTransport | None = None,
        listen: Callable[[], None] | None = None,
        message_allowance: MessageAllowance | None = None,
        listen_counts: ListenCounts | None = None,
        watch_resources: bool = True,
    ) -> None:
        # Who it works for, shared with its parts (none of which points back at the session:
        # a closed session is freed by reference counting alone).
        self._caller = CurrentPrincipal(principal, connection_id)
        # The transport's message buckets (None: no rate limit), retuned when limits change.
        self._message_allowance = message_allowance
        self.executor = executor
        self._close_transport = close_transport
        # Everything this session starts; closing it cancels or awaits all of it.
        self._tasks = TaskOwner()
        # Requests of ours to the client (elicitation, sampling), answered in handle_response.
        self._client_requests = ClientRequests(
            send=send,
            timeout=identity.client_request_timeout,
            max_outstanding=identity.client_requests_per_connection,
        )
        self._client_log = ClientLog(send)
        self.listener = ConnectionListener(
            connection_id=connection_id,
            send=send,
            log=self._client_log,
            owner=self._tasks,
            detach=executor.detach,
            liveness=liveness,
            listen=listen,
            client_requests=self._client_requests,
        )
        self.features = SessionFeatures(
            caller=self._caller,
            identity=identity,
            executor=executor,
            listener=self.listener,
            connection_id=connection_id,
            send=send,
            liveness=liveness,
            listen=listen,
            watch_resources=watch_resources,
            listen_counts=listen_counts,
        )
        self._spawned = SpawnedRequests(owner=self._tasks, admission=admission)
        self._pings = ClientPings(interval=identity.ping_interval, timeout=identity.ping_timeout)
        self.catalog = catalog
        self.identity = identity
        self.connection_id = connection_id
        self._send = send
        self.state = SessionState.AWAITING_INITIALIZE
        self.protocol_version: str | None = None
        self.client_initialized = False

    def restore(
        self, *, protocol_version: str, client_capabilities: dict[str, Any], log_level: str
    ) -> None:
        """Resume a session whose initialize was answered earlier (on another exchange, maybe
        in another process): ready, with the revision, capabilities and level it had."""
        self.protocol_version = protocol_version
        self.client_capabilities = client_capabilities
        self.log_level = log_level
        self.client_initialized = True
        self.ready()

    @property
    def is_idle(self) -> bool:
        """Whether it is as a session freshly restored to its state would be: ready, nothing
        of it running or waiting (requests, their tasks, questions to the client, operations
        listened to), no stateful part made. Streamable HTTP serves the next request of its
        session with such a one rather than building another."""
        return (
            self.state is SessionState.READY
            and self._spawned.idle
            and self._tasks.idle
            and self._client_requests.idle
            and self.listener.idle
            and self.features.stateless
        )

    def use_allowance(self, allowance: MessageAllowance | None) -> None:
        """Count what comes next against `allowance` (its transport's buckets, retuned when
        the tenant's limits change)."""
        self._message_allowance = allowance

    def ready(self) -> None:
        """The handshake is answered (or restored): requests are taken, logs may be sent."""
        self.state = SessionState.READY
        self._client_log.ready = True

    @property
    def principal(self) -> Principal:
        """The caller, as authenticated (tool set and limits kept current)."""
        return self._caller.principal

    @principal.setter
    def principal(self, principal: Principal) -> None:
        self._caller.principal = principal

    @property
    def client_capabilities(self) -> dict[str, Any]:
        """What the client declared in initialize (what the server may ask of it)."""
        return self._client_requests.capabilities

    @client_capabilities.setter
    def client_capabilities(self, capabilities: dict[str, Any]) -> None:
        self._client_requests.capabilities = capabilities

    # The parts composed for the other features (made on first use: SessionFeatures).
    @property
    def tasks(self) -> TaskRequests:
        """tasks/* requests."""
        return self.features.tasks

    @property
    def resources(self) -> ResourceRequests:
        """resources/* requests."""
        return self.features.resources

    @property
    def prompts(self) -> PromptRequests:
        """prompts/* requests."""
        return self.features.prompts

    @property
    def completion(self) -> CompletionRequests:
        """completion/complete requests."""
        return self.features.completion

    @property
    def subscriptions(self) -> ResourceSubscriptions:
        """Resource subscriptions."""
        return self.features.subscriptions

    @property
    def listens(self) -> Listens:
        """subscriptions/listen requests (made on first use: `features.open_listens` counts
        them without making them)."""
        return self.features.listens

    @property
    def log_level(self) -> str:
        """The lowest level of `notifications/message` the client asked for."""
        return self._client_log.level

    @log_level.setter
    def log_level(self, level: str) -> None:
        self._client_log.set_level(level)

    # --- input (session_dispatch.py), bound as this session's methods ----------------------
    receive = session_dispatch.receive
    receive_message = session_dispatch.receive_message
    reject_frame = session_dispatch.reject_frame
    reject_unparseable = session_dispatch.reject_unparseable
    handle_response = session_dispatch.handle_response

    # --- lifecycle -----------------------------------------------------------------------
    async def close(self, *, server_shutdown: bool = False, reason: Stop | None = None) -> None:
        """The connection is gone: stop in-flight work and send nothing more.

        When the server itself is going away, the work is interrupted rather than cancelled;
        a `reason` (e.g. access revoked) is recorded as why the work was cancelled.
        """
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self._client_log.closed = True
        cancel_reason = (
            Stop(StopReason.SHUTDOWN) if server_shutdown else reason or Stop(StopReason.DISCONNECT)
        )
        # Tools waiting on the client get an error now rather than a cancel from the owner.
        self._client_requests.close()
        await self._tasks.close(reason=cancel_reason, batch=_CANCEL_BATCH)
        # Tasks keep running without this connection; it just stops listening to them.
        await self.listener.close()
        await self.features.close()

    # --- as the registry sees it (mcp_server.cluster.connections.LocalConnection) ---------
    @property
    def is_closed(self) -> bool:
        """Whether the connection has closed (then nothing more is sent)."""
        return self.state is SessionState.CLOSED

    @property
    def tenant_id(self) -> int:
        """The caller's tenant (for scoped broadcasts)."""
        return self.principal.tenant_id

    @property
    def user_id(self) -> int:
        """The caller (for scoped broadcasts)."""
        return self.principal.user_id

    async def keep_alive(self, now: float) -> None:
        """Ping the client when it has been idle; close the connection when it stays silent.

        Only a client that initialized is pinged: 2026-07-28 has no ping, and a server of it
        sends no requests, so a connection carrying only its requests is left to the
        transport's own liveness (WebSocket pings)."""
        if self.state is SessionState.READY:
            await self._pings.check(now, send=self._send, close=self._close_transport)

    async def going_away(self) -> None:
        """The server is shutting down: say so (to a client that initialized, a notice; a
        2026-07-28 one gets no unrequested log, but each of its listens its closing
        response), then stop this connection's work."""
        ended = self.features.end_listens()
        ending = [self._spawned.task(i) for i in ended if i in self._spawned]
        if ending:
            await asyncio.wait(ending, timeout=_LISTEN_GOODBYE_SECONDS)
        if self.state is SessionState.READY:
            here = self.executor.running_here(self.listener.task_ids)
            notice = shutdown_notice(
                tasks_keep_running=self.executor.tasks_outlive_process,
                interrupted_tasks=[str(key) for key in here],
            )
            try:
                await self._send(notice)
            except Exception:
                logger.debug("could not send the shutdown notice", exc_info=True)
        await self.close(server_shutdown=True)

    async def revoke_access(self, code: int, reason: str) -> None:
        """The caller lost access: cancel this connection's work (recorded as access revoked,
        with `reason`), then close the connection with `code` (44xx) and `reason`."""
        if self.state is SessionState.CLOSED:
            return
        await self.close(reason=Stop.access_revoked(reason))
        if self._close_transport is not None:
            await self._close_transport(code, reason)

    async def tenant_changed(
        self,
        enabled_tools: frozenset[str] | None,
        disabled_tools: frozenset[str],
        limits: TenantLimits,
    ) -> None:
        """The tenant's settings changed: list and call from the new tool set (telling the
        client, `notifications/{tools,prompts,resources}/list_changed`, when what it sees
        changed), and bound the next requests and messages by the new limits."""
        if self.state is SessionState.CLOSED:
            return
        previous = self.principal
        self.principal = dataclasses.replace(
            previous, enabled_tools=enabled_tools, disabled_tools=disabled_tools, limits=limits
        )
        if limits != previous.limits and self._message_allowance is not None:
            self._message_allowance.retune(self.principal)
        if (enabled_tools, disabled_tools) == (previous.enabled_tools, previous.disabled_tools):
            return
        catalog = catalog_for(enabled_tools, disabled_tools)
        changed = {
            methods.NOTIFICATION_TOOLS_LIST_CHANGED: catalog.tools != self.catalog.tools,
            # Prompts and templates that need a tool come and go with it.
            methods.NOTIFICATION_PROMPTS_LIST_CHANGED: self.prompts.listed_differs(
                previous, self.principal
            ),
            methods.NOTIFICATION_RESOURCES_LIST_CHANGED: self.resources.listed_differs(
                previous, self.principal
            ),
        }
        self.catalog = catalog
        differing = [method for method, differs in changed.items() if differs]
        if self.state is SessionState.READY:
            for method in differing:
                await self._send(notification_message(method, {}))
        await self.features.list_changed(differing)

    def running_request(self, request_id: Any) -> "asyncio.Task[Reply] | None":
        """The task running spawned request `request_id`, if it runs (a transport that must
        know when a request ended without a reply, e.g. cancelled by its client)."""
        return self._spawned.task(request_id) if request_id in self._spawned else None

    @property
    def in_flight(self) -> int:
        """How many spawned requests are running."""
        return len(self._spawned)

    async def operation_event(self, event: OperationEvent) -> None:
        """An event of an operation this connection listens to (from the channel layer): for
        the calls and tasks it waits for, and the tasks its listens watch."""
        await self.listener.operation_event(event)
        await self.features.task_event(event)

    async def channel_message(self, message: dict[str, Any]) -> None:
        """A message on the connection's channel, from whichever process sent it, decoded once:
        an event of an operation it listens to, or a change of a run it subscribed to."""
        try:
            event = decode_message(message)
        except MalformedMessage as exc:
            logger.warning("ignored a malformed channel message: %s", exc)
            return
        if isinstance(event, RunUpdated):
            await self.run_updated(event)
        elif isinstance(
            event, OperationProgress | OperationLog | OperationFinished | OperationAsking
        ):
            await self.operation_event(event)

    async def run_updated(self, update: RunUpdated) -> None:
        """A run this connection subscribed to changed (from the channel layer)."""
        if self.state is not SessionState.CLOSED:
            await self.features.run_updated(update)

    async def log(
        self,
        level: str,
        data: Any,
        logger_name: str | None,
        task_id: str | None = None,
        rank: int | None = None,
    ) -> None:
        """Send `notifications/message` when `level` passes the client's logging level, or
        `rank`, the threshold of the request it belongs to (naming the task it comes from, if
        any)."""
        await self._client_log(level, data, logger_name, task_id, rank)
