"""How a session takes what its client sends: frames and batches, the lifecycle gate
(initialize first, unless a 2026-07-28 request describes itself), the dispatch of a request to
its handler (inline, or spawned as its own task), its reply and its count; notifications and
responses to the server's own requests. `McpSession` (session.py) binds the entry points.
"""

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from config import log_context
from mcp_server import metrics
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
from mcp_server.protocol.messages import (
    Message,
    Notification,
    Request,
    Response,
    error_message,
    parse_message,
    result_message,
)
from mcp_server.protocol.modern import (
    finish_result,
    read_request_meta,
    server_info,
)
from mcp_server.protocol.versions import allows_batches
from mcp_server.runtime.limits import SlotKey
from mcp_server.session_methods import MODERN_HANDLERS, REQUEST_HANDLERS, SPAWNED, Handler
from mcp_server.session_state import SessionState
from mcp_server.spawned_requests import batch_replies

if TYPE_CHECKING:
    from mcp_server.session import McpSession

# The session's own logger: operators filter the session's lines by it, whichever module logs.
logger = logging.getLogger("mcp_server.session")

Reply = dict[str, Any] | None
# What handling one message gives: its reply now, or the task that will produce it (a spawned
# request inside a batch).
Handled = Reply | asyncio.Task[Reply]


async def receive(session: "McpSession", payload: Any) -> None:
    """Handle one decoded frame: a message, or a batch array where the revision allows."""
    session._pings.seen()
    if isinstance(payload, list):
        await _receive_batch(session, payload)
        return
    reply = await _handle(session, payload, batched=False)
    if isinstance(reply, dict):
        await session._send(reply)


async def receive_message(session: "McpSession", message: Message, *, here: bool = False) -> None:
    """Handle one message its transport has parsed already (an HTTP POST parses its body
    to choose the answer's shape: parsing it again here was 1 % of a loaded process). With
    `here` (a transport whose task waits for this request alone), a call that can send
    nothing before its reply runs in the calling task instead of one of its own."""
    session._pings.seen()
    reply = await _handle_message(session, message, batched=False, here=here)
    if isinstance(reply, dict):
        await session._send(reply)


async def reject_frame(session: "McpSession", code: int, message: str) -> None:
    """Answer a frame that could not be read as JSON-RPC at all (`"id": null`)."""
    await session._send(error_message(None, JsonRpcError(code, message)))


async def reject_unparseable(session: "McpSession", detail: str) -> None:
    """Answer a frame that is not valid JSON with -32700."""
    await reject_frame(session, PARSE_ERROR, f"Parse error: {detail}")


async def _receive_batch(session: "McpSession", batch: list[Any]) -> None:
    if not allows_batches(session.protocol_version):
        version = session.protocol_version or "no protocol version yet"
        await reject_frame(
            session, INVALID_REQUEST, f"JSON-RPC batches are not supported in {version}"
        )
        return
    if not batch:
        await reject_frame(session, INVALID_REQUEST, "An empty batch is not a valid request")
        return
    handled = [await _handle(session, item, batched=True) for item in batch]
    if any(isinstance(item, asyncio.Task) for item in handled):
        # Spawned like any request, so the socket stays responsive; one array when done.
        session._tasks.keep(_answer_batch(session, handled))
        return
    answered = [reply for reply in handled if isinstance(reply, dict)]
    if answered:
        await session._send(answered)


async def _answer_batch(session: "McpSession", handled: list[Handled]) -> None:
    """Send a batch's responses as one array once its spawned requests are done."""
    await asyncio.wait([item for item in handled if isinstance(item, asyncio.Task)])
    if session.state is SessionState.CLOSED:
        return
    answered = batch_replies(handled)
    if not answered:
        return
    try:
        await session._send(answered)
    except Exception:
        logger.debug("could not send the replies to a batch", exc_info=True)


async def _handle(session: "McpSession", payload: Any, *, batched: bool) -> Handled:
    try:
        message = parse_message(payload)
    except MessageError as exc:
        return error_message(exc.request_id, exc) if exc.reply else None
    return await _handle_message(session, message, batched=batched)


async def _handle_message(
    session: "McpSession", message: Message, *, batched: bool, here: bool = False
) -> Handled:
    if isinstance(message, Request):
        return await _handle_request(session, message, batched=batched, here=here)
    if isinstance(message, Notification):
        _handle_notification(session, message)
        return None
    handle_response(session, message)
    return None


async def _handle_request(
    session: "McpSession", request: Request, *, batched: bool, here: bool = False
) -> Handled:
    if session.state is SessionState.CLOSED:
        return None
    try:
        request.meta = read_request_meta(request.params)
    except JsonRpcError as exc:
        return _refuse(session, request, exc)
    if request.meta is not None:
        # 2026-07-28: the request describes itself; whatever this connection did before
        # (an initialize, or nothing) does not matter.
        return await _dispatch(session, request, MODERN_HANDLERS, batched=batched)
    if session.state is SessionState.AWAITING_INITIALIZE and request.method not in (
        methods.INITIALIZE,
        methods.PING,
    ):
        refusal = JsonRpcError(INVALID_REQUEST, "Session not initialized: send initialize first")
        return _refuse(session, request, refusal)
    if here and _answers_alone(session, request):
        return await _run_here(session, request, REQUEST_HANDLERS[request.method])
    return await _dispatch(session, request, REQUEST_HANDLERS, batched=batched)


def _answers_alone(session: "McpSession", request: Request) -> bool:
    """Whether `request` is a handshake-era plain call that can send nothing before its
    reply: no task asked for, no progress token (a queued call's position is reported as
    progress), a tool that `answers_alone`."""
    if request.method != methods.TOOLS_CALL:
        return False
    params = request.params
    name = params.get("name")
    if "task" in params or not isinstance(name, str):
        return False
    meta = params.get("_meta")
    if isinstance(meta, dict) and "progressToken" in meta:
        return False
    tool = session.catalog.get(name)
    return tool is not None and tool.answers_alone


def _refuse(session: "McpSession", request: Request, error: JsonRpcError) -> dict[str, Any]:
    """The error reply to a request refused before any handler ran, counted like the
    answers of `_respond` (outcome "error")."""
    metrics.request_answered(request.method, "error", session.principal)
    return error_message(request.id, error)


async def _dispatch(
    session: "McpSession", request: Request, handlers: dict[str, Handler], *, batched: bool
) -> Handled:
    handler = handlers.get(request.method)
    if handler is None:
        return _refuse(session, request, method_not_found(request.method))
    if request.method in SPAWNED:
        return _spawn(session, request, handler, batched=batched)
    return await _respond(session, request, handler)


def _spawn(
    session: "McpSession", request: Request, handler: Handler, *, batched: bool = False
) -> Handled:
    """Run a request as its own task (in a batch, the task's result is its reply)."""
    run = _run_spawned(session, request, handler, batched=batched)
    try:
        return session._spawned.start(
            request.id,
            run,
            key=_slot_key(session),
            limits=session.principal.limits,
            # A listen is bounded as a listen (listens.py), not as work in flight.
            counted=request.method != methods.SUBSCRIPTIONS_LISTEN,
        )
    except JsonRpcError as refusal:
        return _refuse_spawn(session, request, refusal)


async def _run_here(session: "McpSession", request: Request, handler: Handler) -> Handled:
    """Run a request as `_spawn` would, but in the calling task (no task to make, schedule
    and wait for); its reply is sent as a spawned request's is, and a cancel (its client's,
    the session's close, its operation's) ends it as it would end its own task."""
    run = _run_spawned(session, request, handler, batched=False)
    try:
        await session._spawned.run_here(
            request.id, run, key=_slot_key(session), limits=session.principal.limits
        )
    except JsonRpcError as refusal:
        return _refuse_spawn(session, request, refusal)
    return None


def _refuse_spawn(session: "McpSession", request: Request, refusal: JsonRpcError) -> Handled:
    """The reply to a request refused before it could run (already in flight, over a
    bound)."""
    if refusal.code == LIMIT_EXCEEDED:
        metrics.refused(refusal.data["limit"], session.principal)
    return _refuse(session, request, refusal)


async def _run_spawned(
    session: "McpSession", request: Request, handler: Handler, *, batched: bool
) -> Reply:
    try:
        reply = await _respond(session, request, handler)
    except asyncio.CancelledError:
        if session.state is SessionState.CLOSED or session._spawned.cancelled_by_client(request.id):
            raise
        # Cancelled by someone else (the REST API, the admin): the client must not wait.
        error = JsonRpcError(INTERNAL_ERROR, "The operation was cancelled", {"by": "server"})
        reply = error_message(request.id, error)
    if batched:
        return reply
    if session.state is SessionState.CLOSED:
        return None
    try:
        await session._send(reply)
    except Exception:
        logger.debug("could not send the reply to request %r", request.id, exc_info=True)
    return None


async def _respond(session: "McpSession", request: Request, handler: Handler) -> dict[str, Any]:
    """The reply to `request`, with the request named in the log context meanwhile and its
    outcome counted (inline rather than as decorators: two coroutine layers per request)."""
    scope = log_context.enter_request(request)
    outcome = "cancelled"
    try:
        result = await handler(session, request)
        if request.meta is not None:
            result = finish_result(
                request.method,
                result,
                server=_server_info(session),
                ttl_ms=session.identity.cache_ttl_ms,
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
        metrics.request_answered(request.method, outcome, session.principal)
    return reply


def _handle_notification(session: "McpSession", notification: Notification) -> None:
    if notification.method == methods.NOTIFICATION_INITIALIZED:
        session.client_initialized = True
    elif notification.method == methods.NOTIFICATION_CANCELLED:
        session._spawned.cancel_by_client(notification.params.get("requestId"))
    else:
        logger.debug("ignored notification %s", notification.method)


def handle_response(session: "McpSession", response: Response) -> bool:
    """Hand the client's response to the request of ours that waits for it; False (and
    ignored) when none does. The one entry point for responses, whichever transport or
    process received them (an HTTP POST may reach another web process, which forwards it
    here)."""
    if session._client_requests.resolve(response):
        return True
    # Answers to our pings (any frame counts as life), late or unknown answers.
    logger.debug("ignored a response to unknown request id %r", response.id)
    return False


def _server_info(session: "McpSession") -> dict[str, str]:
    """How a modern result names this server."""
    identity = session.identity
    return server_info(name=identity.name, title=identity.title, version=identity.version)


def _slot_key(session: "McpSession") -> SlotKey:
    """Who this connection works for: its slots, requests in flight and database share."""
    return session._caller.slot_key()
