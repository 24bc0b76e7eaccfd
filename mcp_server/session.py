"""One MCP session per connection: lifecycle state machine, dispatch, in-flight requests.

The session knows nothing of WebSockets or Django: it is given decoded JSON values and a
`send` coroutine for outgoing messages, so another transport can reuse it untouched.
"""

import asyncio
import dataclasses
import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from accounts.principal import Principal
from config import log_context
from mcp_server import metrics
from mcp_server.protocol import methods
from mcp_server.protocol.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    JsonRpcError,
    MessageError,
    RequestId,
    invalid_params,
    method_not_found,
)
from mcp_server.protocol.lifecycle import initialize_result, parse_initialize
from mcp_server.protocol.log_levels import DEFAULT_LEVEL, level_rank
from mcp_server.protocol.messages import (
    Notification,
    Request,
    Response,
    error_message,
    notification_message,
    parse_message,
    result_message,
)
from mcp_server.protocol.pagination import paginate
from mcp_server.protocol.progress_tokens import progress_token
from mcp_server.protocol.tasks import (
    RELATED_TASK,
    requested_ttl,
)
from mcp_server.protocol.versions import allows_batches
from mcp_server.runtime.admission import InFlightLimitReached
from mcp_server.runtime.limits import SlotKey
from mcp_server.runtime.runner import (
    INTERRUPTED_BY_SHUTDOWN,
    CallRequest,
    OperationRunner,
    access_revoked_reason,
)
from mcp_server.session_operations import Attachment, OperationRequests
from mcp_server.tools.catalog import ToolCatalog, catalog_for

if TYPE_CHECKING:
    from mcp_server.cluster.node import ClusterNode

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
    # A tenant's tool set can change while connected (notifications/tools/list_changed).
    "tools": {"listChanged": True},
    "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
}
# Requests cancelled per turn of the event loop when a connection closes: thousands cancelled
# at once would all end in one turn and hold up every other connection meanwhile.
_CANCEL_BATCH = 64
# The close code for a connection that did not answer the server's ping (mirrors HTTP 408).
CLOSE_PING_TIMEOUT = 4408
_OUTCOME_ERRORS = {
    "cancelled": "The operation was cancelled",
    "interrupted": "The operation was interrupted",
}


class SessionState(enum.Enum):
    """Where a session is in the MCP lifecycle."""

    AWAITING_INITIALIZE = "awaiting_initialize"
    READY = "ready"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """How the server introduces itself, and its per-session limits."""

    name: str
    title: str
    version: str
    tools_page_size: int = 50
    instructions: str | None = None
    tasks_page_size: int = 50
    task_default_ttl: int = 24 * 3600 * 1000
    task_max_ttl: int = 7 * 24 * 3600 * 1000
    task_poll_interval: int = 1000
    ping_interval: float = 30.0
    ping_timeout: float = 15.0


class McpSession(OperationRequests):
    """The MCP state of one connection; feed it decoded messages, it sends the replies."""

    __slots__ = (
        "__weakref__",
        "_attached",
        "_background",
        "_client_cancelled",
        "_close_transport",
        "_in_flight",
        "_listen",
        "_log_rank",
        "_ping_id",
        "_ping_sent",
        "_pings",
        "_send",
        "catalog",
        "client_initialized",
        "connection_id",
        "identity",
        "in_worker",
        "last_seen",
        "node",
        "principal",
        "protocol_version",
        "runner",
        "state",
    )

    _REQUEST_HANDLERS: ClassVar[dict[str, Handler]] = {}
    # Requests that run as their own task so the connection stays responsive meanwhile.
    _SPAWNED: ClassVar[frozenset[str]] = frozenset({methods.TOOLS_CALL, methods.TASKS_RESULT})

    def __init__(
        self,
        *,
        principal: Principal,
        catalog: ToolCatalog,
        identity: ServerIdentity,
        runner: OperationRunner,
        connection_id: str,
        send: Send,
        node: "ClusterNode | None" = None,
        in_worker: bool = False,
        close_transport: CloseTransport | None = None,
        listen: Callable[[], None] | None = None,
    ) -> None:
        self.principal = principal
        # Called before the connection's id is handed out as a listener (the transport then
        # starts reading what is sent to it).
        self._listen = listen
        self.node = node
        self.in_worker = in_worker
        self._close_transport = close_transport
        self._attached: dict[UUID, Attachment] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._client_cancelled: set[RequestId] = set()
        self.last_seen = time.monotonic()
        self._ping_id: str | None = None
        self._ping_sent = 0.0
        self._pings = 0
        self.catalog = catalog
        self.identity = identity
        self.runner = runner
        self.connection_id = connection_id
        self._send = send
        self.state = SessionState.AWAITING_INITIALIZE
        self.protocol_version: str | None = None
        self.client_initialized = False
        self._log_rank = level_rank(DEFAULT_LEVEL)
        self._in_flight: dict[RequestId, asyncio.Task[Reply]] = {}

    # --- input ---------------------------------------------------------------------------
    async def receive(self, payload: Any) -> None:
        """Handle one decoded frame: a message, or a batch array where the revision allows."""
        # Any frame shows the client is alive: no ping needed, an outstanding one is answered.
        self.last_seen = time.monotonic()
        self._ping_id = None
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
            task = asyncio.create_task(self._answer_batch(handled))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        answered = [reply for reply in handled if isinstance(reply, dict)]
        if answered:
            await self._send(answered)

    async def _answer_batch(self, handled: list[Handled]) -> None:
        """Send a batch's responses as one array once its spawned requests are done."""
        await asyncio.wait([item for item in handled if isinstance(item, asyncio.Task)])
        if self.state is SessionState.CLOSED:
            return
        answered: list[dict[str, Any]] = []
        for item in handled:
            if isinstance(item, asyncio.Task):
                # A request the client cancelled gets no response, as outside a batch.
                item = None if item.cancelled() or item.exception() else item.result()
            if item is not None:
                answered.append(item)
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
        self._handle_response(message)
        return None

    async def _handle_request(self, request: Request, *, batched: bool) -> Handled:
        if self.state is SessionState.CLOSED:
            return None
        if self.state is SessionState.AWAITING_INITIALIZE and request.method not in (
            methods.INITIALIZE,
            methods.PING,
        ):
            return error_message(
                request.id,
                JsonRpcError(INVALID_REQUEST, "Session not initialized: send initialize first"),
            )
        handler = self._REQUEST_HANDLERS.get(request.method)
        if handler is None:
            return error_message(request.id, method_not_found(request.method))
        if request.method in self._SPAWNED:
            return self._spawn(request, handler, batched=batched)
        return await self._respond(request, handler)

    def _spawn(self, request: Request, handler: Handler, *, batched: bool = False) -> Handled:
        """Run a request as its own task (in a batch, the task's result is its reply)."""
        if request.id in self._in_flight:
            return error_message(
                request.id,
                JsonRpcError(INVALID_REQUEST, f"Request id {request.id!r} is already in flight"),
            )
        key = self._slot_key
        try:
            self.runner.admission.admit(key, self.principal.limits)
        except InFlightLimitReached as exc:
            metrics.refused(exc.data["limit"], self.principal)
            return error_message(request.id, JsonRpcError(LIMIT_EXCEEDED, str(exc), exc.data))
        task = asyncio.create_task(self._run_spawned(request, handler, batched=batched))
        self._in_flight[request.id] = task
        task.add_done_callback(functools.partial(self._forget, request.id, key))
        return task

    def _forget(self, request_id: RequestId, key: SlotKey, task: asyncio.Task[Reply]) -> None:
        self.runner.admission.release(key)
        if self._in_flight.get(request_id) is task:
            del self._in_flight[request_id]

    async def _run_spawned(self, request: Request, handler: Handler, *, batched: bool) -> Reply:
        try:
            reply = await self._respond(request, handler)
        except asyncio.CancelledError:
            if self.state is SessionState.CLOSED or request.id in self._client_cancelled:
                raise
            # Cancelled by someone else (the REST API, the admin): the client must not wait.
            error = JsonRpcError(INTERNAL_ERROR, "The operation was cancelled", {"by": "server"})
            reply = error_message(request.id, error)
        finally:
            self._client_cancelled.discard(request.id)
        if batched:
            return reply
        if self.state is SessionState.CLOSED:
            return None
        try:
            await self._send(reply)
        except Exception:
            logger.debug("could not send the reply to request %r", request.id, exc_info=True)
        return None

    @metrics.counts_requests
    @log_context.request_scope
    async def _respond(self, request: Request, handler: Handler) -> dict[str, Any]:
        try:
            return result_message(request.id, await handler(self, request))
        except JsonRpcError as exc:
            return error_message(request.id, exc)
        except Exception:
            logger.exception("request %s failed", request.method)
            return error_message(request.id, JsonRpcError(INTERNAL_ERROR, "Internal error"))

    def _handle_notification(self, notification: Notification) -> None:
        if notification.method == methods.NOTIFICATION_INITIALIZED:
            self.client_initialized = True
        elif notification.method == methods.NOTIFICATION_CANCELLED:
            self._cancel(notification.params.get("requestId"))
        else:
            logger.debug("ignored notification %s", notification.method)

    def _handle_response(self, response: Response) -> None:
        # The server has no outstanding requests of its own yet: every response is unknown.
        logger.debug("ignored a response to unknown request id %r", response.id)

    def _cancel(self, request_id: Any) -> None:
        valid = isinstance(request_id, str | int) and not isinstance(request_id, bool)
        task = self._in_flight.get(request_id) if valid else None
        if task is not None:
            self._client_cancelled.add(request_id)
            task.cancel()

    # --- lifecycle -----------------------------------------------------------------------
    async def close(self, *, server_shutdown: bool = False, reason: str | None = None) -> None:
        """The connection is gone: stop in-flight work and send nothing more.

        When the server itself is going away, the work is interrupted rather than cancelled;
        a `reason` (e.g. access revoked) is recorded as why the work was cancelled.
        """
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        tasks = list(self._in_flight.values())
        cancel_reason = INTERRUPTED_BY_SHUTDOWN if server_shutdown else reason
        for start in range(0, len(tasks), _CANCEL_BATCH):
            if start:
                await asyncio.sleep(0)  # let the batch before end before cancelling more
            for task in tasks[start : start + _CANCEL_BATCH]:
                task.cancel(cancel_reason)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()
        # Tasks keep running without this connection; it just stops listening to them.
        for key in list(self._attached):
            await self._forget_operation(key)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # --- cluster connection (see mcp_server.cluster.node.LocalConnection) ------------------
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
        """Ping the client when it has been idle; close the connection when it stays silent."""
        if self.state is SessionState.CLOSED:
            return
        if self._ping_id is not None:
            if now - self._ping_sent > self.identity.ping_timeout and self._close_transport:
                reason = f"no reply to ping within {self.identity.ping_timeout:g} s"
                await self._close_transport(CLOSE_PING_TIMEOUT, reason)
            return
        if now - self.last_seen >= self.identity.ping_interval:
            self._pings += 1
            self._ping_id = f"server-ping-{self._pings}"
            self._ping_sent = now
            await self._send({"jsonrpc": "2.0", "id": self._ping_id, "method": methods.PING})

    async def going_away(self) -> None:
        """The server is shutting down: say so, then stop this connection's work."""
        if self.state is not SessionState.CLOSED:
            notice = {
                "level": "warning",
                "logger": "server",
                "data": {
                    "message": "This server is shutting down; reconnect to continue. "
                    + (
                        "Tasks keep running and can be resumed from any server."
                        if self.in_worker
                        else "Operations running on it, tasks included, are interrupted."
                    ),
                    "reason": "shutdown",
                },
            }
            try:
                await self._send(notification_message(methods.NOTIFICATION_MESSAGE, notice))
            except Exception:
                logger.debug("could not send the shutdown notice", exc_info=True)
        await self.close(server_shutdown=True)

    async def revoke_access(self, code: int, reason: str) -> None:
        """The caller lost access: cancel this connection's work (recorded as access revoked,
        with `reason`), then close the connection with `code` (44xx) and `reason`."""
        if self.state is SessionState.CLOSED:
            return
        await self.close(reason=access_revoked_reason(reason))
        if self._close_transport is not None:
            await self._close_transport(code, reason)

    async def tools_changed(self, enabled_tools: frozenset[str] | None) -> None:
        """The tenant's tool set changed: list and call from the new one, and tell the client
        (`notifications/tools/list_changed`) when the tools it sees changed."""
        if self.state is SessionState.CLOSED or enabled_tools == self.principal.enabled_tools:
            return
        self.principal = dataclasses.replace(self.principal, enabled_tools=enabled_tools)
        catalog = catalog_for(enabled_tools)
        changed = catalog.tools != self.catalog.tools
        self.catalog = catalog
        if changed and self.state is SessionState.READY:
            await self._send(notification_message(methods.NOTIFICATION_TOOLS_LIST_CHANGED, {}))

    @property
    def in_flight(self) -> int:
        """How many spawned requests are running."""
        return len(self._in_flight)

    # --- CallEvents ----------------------------------------------------------------------
    async def log(
        self, level: str, data: Any, logger_name: str | None, task_id: str | None = None
    ) -> None:
        """Send `notifications/message` when `level` passes the client's logging level (naming
        the task it comes from, if any)."""
        if level_rank(level) < self._log_rank or self.state is SessionState.CLOSED:
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger_name:
            params["logger"] = logger_name
        if task_id is not None:
            params["_meta"] = {RELATED_TASK: {"taskId": task_id}}
        await self._send(notification_message(methods.NOTIFICATION_MESSAGE, params))

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
        self.state = SessionState.READY
        return result

    async def _ping(self, request: Request) -> dict[str, Any]:
        return {}

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
        params = request.params
        name = params.get("name")
        if not isinstance(name, str):
            raise invalid_params("tools/call requires a string name")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise invalid_params("tools/call arguments must be an object")
        tool = self.catalog.get(name)
        if tool is None:
            raise invalid_params(f"Unknown tool: {name}")
        ttl = requested_ttl(
            params, default=self.identity.task_default_ttl, maximum=self.identity.task_max_ttl
        )
        if ttl is not None and tool.task_support == "forbidden":
            raise JsonRpcError(METHOD_NOT_FOUND, f"Tool {name!r} does not support tasks")
        if ttl is None and tool.task_support == "required":
            raise JsonRpcError(METHOD_NOT_FOUND, f"Tool {name!r} must be called as a task")
        call = CallRequest(
            principal=self.principal,
            tool=tool,
            arguments=arguments,
            connection_id=self.connection_id,
            request_id=request.id,
            progress_token=progress_token(params),
        )
        if ttl is not None:
            return await self._start_task(call, ttl)
        if self.in_worker:
            return await self._call_in_worker(call)
        return await self.runner.call(call, send=self._send, events=self)

    async def _logging_set_level(self, request: Request) -> dict[str, Any]:
        self._log_rank = level_rank(request.params.get("level"))  # type: ignore[arg-type]
        return {}


McpSession._REQUEST_HANDLERS.update(
    {
        methods.INITIALIZE: McpSession._initialize,
        methods.PING: McpSession._ping,
        methods.TOOLS_LIST: McpSession._tools_list,
        methods.TOOLS_CALL: McpSession._tools_call,
        methods.LOGGING_SET_LEVEL: McpSession._logging_set_level,
        methods.TASKS_GET: McpSession._tasks_get,
        methods.TASKS_RESULT: McpSession._tasks_result,
        methods.TASKS_LIST: McpSession._tasks_list,
        methods.TASKS_CANCEL: McpSession._tasks_cancel,
    }
)
