"""One MCP session per connection: lifecycle state machine, dispatch, in-flight requests.

The session knows nothing of WebSockets, HTTP or Django: it is given decoded JSON values and a
`send` coroutine for outgoing messages. The WebSocket transport keeps one for its socket's life;
Streamable HTTP (mcp_server/http_transport/) builds one per exchange and `restore`s it to the
state its session's initialize negotiated (`protocol_version`, `client_capabilities`,
`log_level`), which that transport keeps where every web process can read it.
"""

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from accounts.limits import TenantLimits
from accounts.principal import Principal
from config import log_context
from mcp_server import metrics
from mcp_server.admission import MessageAllowance
from mcp_server.client_log import ClientLog
from mcp_server.client_pings import ClientPings
from mcp_server.client_requests import ClientRequests
from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.dispatch import DispatchQueueFull
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
from mcp_server.protocol.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    PARSE_ERROR,
    JsonRpcError,
    MessageError,
    method_not_found,
)
from mcp_server.protocol.lifecycle import initialize_result, parse_initialize, shutdown_notice
from mcp_server.protocol.messages import (
    Notification,
    Request,
    Response,
    error_message,
    notification_message,
    parse_message,
    result_message,
)
from mcp_server.protocol.modern import (
    discover_result,
    finish_result,
    read_request_meta,
    server_info,
)
from mcp_server.protocol.pagination import paginate
from mcp_server.protocol.tasks import TASKS_EXTENSION
from mcp_server.protocol.versions import allows_batches
from mcp_server.resource_requests import ResourceRequests
from mcp_server.resource_subscriptions import ResourceSubscriptions
from mcp_server.runtime.admission import InFlightRequests
from mcp_server.runtime.limits import SlotKey
from mcp_server.session_caller import CurrentPrincipal
from mcp_server.session_features import SessionFeatures
from mcp_server.spawned_requests import SpawnedRequests, batch_replies
from mcp_server.task_requests import TaskRequests
from mcp_server.tool_calls import read_tools_call
from mcp_server.tools.catalog import ToolCatalog, catalog_for

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness
    from mcp_server.executors import Executor

logger = logging.getLogger(__name__)

Send = Callable[[Any], Awaitable[None]]
Handler = Callable[["McpSession", Request], Awaitable[dict[str, Any]]]
Reply = dict[str, Any] | None
# What handling one message gives: its reply now, or the task that will produce it (a spawned
# request inside a batch).
Handled = Reply | asyncio.Task[Reply]
CloseTransport = Callable[[int, str], Awaitable[None]]

SERVER_CAPABILITIES: dict[str, Any] = {
    "logging": {},
    "completions": {},
    # A tenant's tool set can change while connected (notifications/tools/list_changed), and
    # with it the prompts and resource templates that need a tool (*/list_changed).
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"subscribe": True, "listChanged": True},
    "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
}
# What a 2026-07-28 client learns from server/discover. List changes and resource updates
# reach a modern client only through subscriptions/listen (listens.py). Tasks are the tasks
# extension's (never the 2025-11-25 `tasks` capability).
MODERN_CAPABILITIES: dict[str, Any] = {
    "logging": {},
    "completions": {},
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"subscribe": True, "listChanged": True},
    "extensions": {TASKS_EXTENSION: {}},
}
# How long a shutdown waits for its listens' closing responses to go out.
_LISTEN_GOODBYE_SECONDS = 1.0
# Requests cancelled per turn of the event loop when a connection closes: thousands cancelled
# at once would all end in one turn and hold up every other connection meanwhile.
_CANCEL_BATCH = 64


class SessionState(enum.Enum):
    """Where a session is in the MCP lifecycle."""

    AWAITING_INITIALIZE = "awaiting_initialize"
    READY = "ready"
    CLOSED = "closed"


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

    _REQUEST_HANDLERS: ClassVar[dict[str, Handler]] = {}
    # The methods of a 2026-07-28 request (no handshake, ping, setLevel or subscribe).
    _MODERN_HANDLERS: ClassVar[dict[str, Handler]] = {}
    # Requests that run as their own task so the connection stays responsive meanwhile.
    _SPAWNED: ClassVar[frozenset[str]] = frozenset(
        {methods.TOOLS_CALL, methods.TASKS_RESULT, methods.SUBSCRIPTIONS_LISTEN}
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
        self._client_log.set_level(log_level)
        self.client_initialized = True
        self._ready()

    def _ready(self) -> None:
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

    # --- input ---------------------------------------------------------------------------
    async def receive(self, payload: Any) -> None:
        """Handle one decoded frame: a message, or a batch array where the revision allows."""
        self._pings.seen()
        if isinstance(payload, list):
            await self._receive_batch(payload)
            return
        reply = await self._handle(payload, batched=False)
        if isinstance(reply, dict):
            await self._send(reply)

    async def reject_frame(self, code: int, message: str) -> None:
        """Answer a frame that could not be read as JSON-RPC at all (`"id": null`)."""
        await self._send(error_message(None, JsonRpcError(code, message)))

    async def reject_unparseable(self, detail: str) -> None:
        """Answer a frame that is not valid JSON with -32700."""
        await self.reject_frame(PARSE_ERROR, f"Parse error: {detail}")

    async def _receive_batch(self, batch: list[Any]) -> None:
        if not allows_batches(self.protocol_version):
            version = self.protocol_version or "no protocol version yet"
            await self.reject_frame(
                INVALID_REQUEST, f"JSON-RPC batches are not supported in {version}"
            )
            return
        if not batch:
            await self.reject_frame(INVALID_REQUEST, "An empty batch is not a valid request")
            return
        handled = [await self._handle(item, batched=True) for item in batch]
        if any(isinstance(item, asyncio.Task) for item in handled):
            # Spawned like any request, so the socket stays responsive; one array when done.
            self._tasks.keep(self._answer_batch(handled))
            return
        answered = [reply for reply in handled if isinstance(reply, dict)]
        if answered:
            await self._send(answered)

    async def _answer_batch(self, handled: list[Handled]) -> None:
        """Send a batch's responses as one array once its spawned requests are done."""
        await asyncio.wait([item for item in handled if isinstance(item, asyncio.Task)])
        if self.state is SessionState.CLOSED:
            return
        answered = batch_replies(handled)
        if not answered:
            return
        try:
            await self._send(answered)
        except Exception:
            logger.debug("could not send the replies to a batch", exc_info=True)

    async def _handle(self, payload: Any, *, batched: bool) -> Handled:
        try:
            message = parse_message(payload)
        except MessageError as exc:
            return error_message(exc.request_id, exc) if exc.reply else None
        if isinstance(message, Request):
            return await self._handle_request(message, batched=batched)
        if isinstance(message, Notification):
            self._handle_notification(message)
            return None
        self.handle_response(message)
        return None

    async def _handle_request(self, request: Request, *, batched: bool) -> Handled:
        if self.state is SessionState.CLOSED:
            return None
        try:
            request.meta = read_request_meta(request.params)
        except JsonRpcError as exc:
            return self._refuse(request, exc)
        if request.meta is not None:
            # 2026-07-28: the request describes itself; whatever this connection did before
            # (an initialize, or nothing) does not matter.
            return await self._dispatch(request, self._MODERN_HANDLERS, batched=batched)
        if self.state is SessionState.AWAITING_INITIALIZE and request.method not in (
            methods.INITIALIZE,
            methods.PING,
        ):
            refusal = JsonRpcError(
                INVALID_REQUEST, "Session not initialized: send initialize first"
            )
            return self._refuse(request, refusal)
        return await self._dispatch(request, self._REQUEST_HANDLERS, batched=batched)

    def _refuse(self, request: Request, error: JsonRpcError) -> dict[str, Any]:
        """The error reply to a request refused before any handler ran, counted like the
        answers of `_respond` (outcome "error")."""
        metrics.request_answered(request.method, "error", self.principal)
        return error_message(request.id, error)

    async def _dispatch(
        self, request: Request, handlers: dict[str, Handler], *, batched: bool
    ) -> Handled:
        handler = handlers.get(request.method)
        if handler is None:
            return self._refuse(request, method_not_found(request.method))
        if request.method in self._SPAWNED:
            return self._spawn(request, handler, batched=batched)
        return await self._respond(request, handler)

    def _spawn(self, request: Request, handler: Handler, *, batched: bool = False) -> Handled:
        """Run a request as its own task (in a batch, the task's result is its reply)."""
        run = self._run_spawned(request, handler, batched=batched)
        try:
            return self._spawned.start(
                request.id,
                run,
                key=self._slot_key,
                limits=self.principal.limits,
                # A listen is bounded as a listen (listens.py), not as work in flight.
                counted=request.method != methods.SUBSCRIPTIONS_LISTEN,
            )
        except JsonRpcError as refusal:
            if refusal.code == LIMIT_EXCEEDED:
                metrics.refused(refusal.data["limit"], self.principal)
            return self._refuse(request, refusal)

    async def _run_spawned(self, request: Request, handler: Handler, *, batched: bool) -> Reply:
        try:
            reply = await self._respond(request, handler)
        except asyncio.CancelledError:
            if self.state is SessionState.CLOSED or self._spawned.cancelled_by_client(request.id):
                raise
            # Cancelled by someone else (the REST API, the admin): the client must not wait.
            error = JsonRpcError(INTERNAL_ERROR, "The operation was cancelled", {"by": "server"})
            reply = error_message(request.id, error)
        if batched:
            return reply
        if self.state is SessionState.CLOSED:
            return None
        try:
            await self._send(reply)
        except Exception:
            logger.debug("could not send the reply to request %r", request.id, exc_info=True)
        return None

    async def _respond(self, request: Request, handler: Handler) -> dict[str, Any]:
        """The reply to `request`, with the request named in the log context meanwhile and its
        outcome counted (inline rather than as decorators: two coroutine layers per request)."""
        scope = log_context.enter_request(request)
        outcome = "cancelled"
        try:
            result = await handler(self, request)
            if request.meta is not None:
                result = finish_result(
                    request.method,
                    result,
                    server=self._server_info,
                    ttl_ms=self.identity.cache_ttl_ms,
                )
            reply = result_message(request.id, result)
            outcome = "ok"
        except JsonRpcError as exc:
            reply, outcome = error_message(request.id, exc), "error"
        except Exception:
            logger.exception("request %s failed", request.method)
            error = JsonRpcError(INTERNAL_ERROR, "Internal error")
            reply, outcome = error_message(request.id, error), "error"
        finally:
            log_context.reset(scope)
            metrics.request_answered(request.method, outcome, self.principal)
        return reply

    def _handle_notification(self, notification: Notification) -> None:
        if notification.method == methods.NOTIFICATION_INITIALIZED:
            self.client_initialized = True
        elif notification.method == methods.NOTIFICATION_CANCELLED:
            self._spawned.cancel_by_client(notification.params.get("requestId"))
        else:
            logger.debug("ignored notification %s", notification.method)

    def handle_response(self, response: Response) -> bool:
        """Hand the client's response to the request of ours that waits for it; False (and
        ignored) when none does. The one entry point for responses, whichever transport or
        process received them (an HTTP POST may reach another web process, which forwards it
        here)."""
        if self._client_requests.resolve(response):
            return True
        # Answers to our pings (any frame counts as life), late or unknown answers.
        logger.debug("ignored a response to unknown request id %r", response.id)
        return False

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

    @property
    def _server_info(self) -> dict[str, str]:
        """How a modern result names this server."""
        identity = self.identity
        return server_info(name=identity.name, title=identity.title, version=identity.version)

    @property
    def _slot_key(self) -> SlotKey:
        """Who this connection works for: its slots, requests in flight and database share."""
        return self._caller.slot_key()

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

    # --- request handlers ----------------------------------------------------------------
    async def _initialize(self, request: Request) -> dict[str, Any]:
        if self.state is not SessionState.AWAITING_INITIALIZE:
            raise JsonRpcError(INVALID_REQUEST, "Session already initialized")
        hello = parse_initialize(request.params)
        result = initialize_result(
            requested_version=hello.protocol_version,
            server_name=self.identity.name,
            server_title=self.identity.title,
            server_version=self.identity.version,
            capabilities=SERVER_CAPABILITIES,
            instructions=self.identity.instructions,
        )
        self.protocol_version = result["protocolVersion"]
        self.client_capabilities = hello.capabilities
        self._ready()
        return result

    async def _ping(self, request: Request) -> dict[str, Any]:
        return {}

    async def _discover(self, request: Request) -> dict[str, Any]:
        return discover_result(MODERN_CAPABILITIES, self.identity.instructions)

    async def _tools_list(self, request: Request) -> dict[str, Any]:
        tools = self.catalog.tools
        start, end, next_cursor = paginate(
            len(tools), request.params.get("cursor"), self.identity.tools_page_size
        )
        result: dict[str, Any] = {"tools": [tool.definition for tool in tools[start:end]]}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    async def _tools_call(self, request: Request) -> dict[str, Any]:
        call, ttl = read_tools_call(
            request.params,
            request_id=request.id,
            principal=self.principal,
            catalog=self.catalog,
            identity=self.identity,
            connection_id=self.connection_id,
            meta=request.meta,
        )
        try:
            if ttl is None:
                return await self.executor.call(call, self.listener)
            if request.meta is not None:
                return await self.tasks.create(call, ttl)
            return await self.tasks.start(call, ttl)
        except DispatchQueueFull as full:
            raise JsonRpcError(LIMIT_EXCEEDED, str(full), full.data) from None

    async def _logging_set_level(self, request: Request) -> dict[str, Any]:
        self._client_log.set_level(request.params.get("level"))  # type: ignore[arg-type]
        return {}


McpSession._REQUEST_HANDLERS.update(
    {
        methods.INITIALIZE: McpSession._initialize,
        methods.PING: McpSession._ping,
        methods.TOOLS_LIST: McpSession._tools_list,
        methods.TOOLS_CALL: McpSession._tools_call,
        methods.LOGGING_SET_LEVEL: McpSession._logging_set_level,
        methods.TASKS_GET: lambda session, request: session.tasks.get(request),
        methods.TASKS_RESULT: lambda session, request: session.tasks.result(request),
        methods.TASKS_LIST: lambda session, request: session.tasks.list(request),
        methods.TASKS_CANCEL: lambda session, request: session.tasks.cancel(request),
        methods.RESOURCES_LIST: lambda session, request: session.resources.list(request),
        methods.RESOURCES_TEMPLATES_LIST: lambda s, request: s.resources.templates(request),
        methods.RESOURCES_READ: lambda session, request: session.resources.read(request),
        methods.PROMPTS_LIST: lambda session, request: session.prompts.list(request),
        methods.PROMPTS_GET: lambda session, request: session.prompts.get(request),
        methods.RESOURCES_SUBSCRIBE: lambda s, request: s.subscriptions.subscribe(request),
        methods.RESOURCES_UNSUBSCRIBE: lambda s, request: s.subscriptions.unsubscribe(request),
        methods.COMPLETION_COMPLETE: lambda session, request: session.completion.complete(request),
    }
)

McpSession._MODERN_HANDLERS.update(
    {
        method: McpSession._REQUEST_HANDLERS[method]
        for method in (
            methods.TOOLS_LIST,
            methods.TOOLS_CALL,
            methods.RESOURCES_LIST,
            methods.RESOURCES_TEMPLATES_LIST,
            methods.RESOURCES_READ,
            methods.PROMPTS_LIST,
            methods.PROMPTS_GET,
            methods.COMPLETION_COMPLETE,
        )
    }
)
McpSession._MODERN_HANDLERS.update(
    {
        methods.SERVER_DISCOVER: McpSession._discover,
        methods.SUBSCRIPTIONS_LISTEN: lambda session, request: session.listens.listen(
            request, session.principal.user_id
        ),
        # The tasks extension's vocabulary, over the same rows as the 2025-11-25 tasks/*.
        methods.TASKS_GET: lambda session, request: session.tasks.detailed(request),
        methods.TASKS_UPDATE: lambda session, request: session.tasks.update(request),
        methods.TASKS_CANCEL: lambda session, request: session.tasks.cancel_cooperatively(request),
    }
)
