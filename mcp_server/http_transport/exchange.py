"""One POSTed JSON-RPC request of an HTTP session, answered by an McpSession built for it.

The session is restored from the session's record (or fresh, for `initialize`) and sends into
a queue; `replies` yields what it sends until the request's response (or until the request
ended without one: cancelled by its client). Calls that report through the cluster (tasks,
worker mode) send their events to the exchange's own channel, read from the moment the
session first listens, as the WebSocket consumer does. The exchange outlives a dropped
response stream: a call goes on until it answers (the transport stores what it sends).
"""

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any

from accounts.limits import TenantLimits
from accounts.principal import Principal
from mcp_server.admission import MessageAllowance
from mcp_server.cluster.layer import receive_riding_out
from mcp_server.http_transport.records import SessionRecord
from mcp_server.operations.lifecycle import Stop
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.protocol.messages import Request
from mcp_server.session import McpSession, Send
from mcp_server.tools.catalog import catalog_for_principal

logger = logging.getLogger(__name__)


def is_response_to(message: Any, request_id: Any) -> bool:
    """Whether an outgoing message is the response to `request_id`."""
    return isinstance(message, dict) and "method" not in message and message.get("id") == request_id


def session_for(
    runtime: ProcessRuntime,
    principal: Principal,
    record: SessionRecord | None,
    *,
    connection_id: str,
    send: Send,
    listen: Callable[[], None] | None = None,
    allowance: MessageAllowance | None = None,
    watch_resources: bool = True,
) -> McpSession:
    """An McpSession of `principal` on this process's runtime, restored to `record` (None: a
    fresh one, for `initialize`)."""
    session = McpSession(
        principal=principal,
        catalog=catalog_for_principal(principal),
        identity=runtime.identity,
        executor=runtime.executor,
        admission=runtime.runner.admission,
        connection_id=connection_id,
        send=send,
        liveness=runtime.liveness,
        listen=listen,
        message_allowance=allowance,
        listen_counts=runtime.listens,
        watch_resources=watch_resources,
    )
    if record is not None:
        session.restore(
            protocol_version=record.protocol_version,
            client_capabilities=record.client_capabilities,
            log_level=record.log_level,
        )
        if not watch_resources:  # a stream's session watches them instead (sync)
            session.features.restore_subscriptions(record.resource_subscriptions)
    return session


class ChannelInbox:
    """A channel-layer channel of this process read for one McpSession from the moment it
    first listens (events of operations it waits for, updates of runs it watches), as the
    WebSocket consumer reads its channel."""

    def __init__(self, runtime: ProcessRuntime, channel: str) -> None:
        self.runtime = runtime
        self.channel = channel
        self.session: McpSession | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def reading(self) -> bool:
        """Whether it has started reading its channel."""
        return self._reader is not None

    def listen(self) -> None:
        """Start reading (once)."""
        if self._reader is None and self.runtime.bus.layer is not None:
            self._reader = asyncio.create_task(self._read(), name="http-session-channel")

    async def _read(self) -> None:
        layer = self.runtime.bus.layer
        session = self.session
        assert layer is not None
        assert session is not None
        while True:
            message = await receive_riding_out(layer, self.channel)
            await session.channel_message(message)

    async def close(self) -> None:
        """Stop reading, and let go of the session (which points at this inbox through its
        `listen`: without this the pair would wait for the cyclic garbage collector)."""
        self.session = None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def new_inbox(runtime: ProcessRuntime) -> ChannelInbox:
    """An inbox on a new channel of this process's layer (a private name without one)."""
    layer = runtime.bus.layer
    channel = await layer.new_channel() if layer is not None else f"http.{secrets.token_hex(8)}"
    return ChannelInbox(runtime, channel)


class Outgoing:
    """What a session sends for one exchange, in order, for one reader; `end` says nothing
    more comes. Lighter than an asyncio.Queue, which every request would build and wait on
    (a queue, its event, and a getter task raced against the request's own task)."""

    __slots__ = ("_ended", "_messages", "_waiter")

    def __init__(self) -> None:
        self._messages: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    def put(self, message: Any) -> None:
        """Queue one outgoing message."""
        self._messages.append(message)
        self._wake()

    def end(self, _task: object = None) -> None:
        """Nothing more comes once the queued messages are read (a done callback, too)."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> "Outgoing":
        return self

    async def __anext__(self) -> Any:
        """The next message; the iteration stops once ended and read to the end."""
        while not self._messages:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._messages.popleft()


async def up_to_response(outgoing: Outgoing, request_id: Any) -> AsyncGenerator[Any, None]:
    """What `outgoing` yields, up to and including the response to `request_id`."""
    async for message in outgoing:
        yield message
        if is_response_to(message, request_id):
            return


class Outbox:
    """An exchange's session's `send`: into the messages of the request the exchange serves
    now (`current`). Not the exchange itself: the session's parts hold it, and pointing back
    at the exchange would leave every exchange in a cycle with its session."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current = Outgoing()

    async def send(self, message: Any) -> None:
        """Queue one outgoing message for the current request."""
        self.current.put(message)


class SessionConnection:
    """An HTTP transport's McpSession as the registry and the access guard see a connection
    (its caller, and whether it has ended)."""

    session: McpSession

    @property
    def principal(self) -> Principal:
        """The caller, as authenticated (tool set and limits kept current)."""
        return self.session.principal

    @property
    def is_closed(self) -> bool:
        """Whether it has ended."""
        return self.session.is_closed

    @property
    def tenant_id(self) -> int:
        """The caller's tenant (for scoped broadcasts)."""
        return self.session.tenant_id

    @property
    def user_id(self) -> int:
        """The caller (for scoped broadcasts)."""
        return self.session.user_id


class Exchange(SessionConnection):
    """The session state and outgoing messages of one POSTed request at a time.

    While it runs it is one of the process's connections (ConnectionRegistry): a shutdown
    interrupts its call and says so on its stream, revoked access cancels it. Broadcasts and
    list changes are for the session's GET stream, not for a request's response stream,
    unless the request is a 2026-07-28 `subscriptions/listen`: then they are its stream.
    One that ended `idle` may serve its session's next request (`resume`): what it sends
    then goes to that request's messages.
    """

    def __init__(
        self,
        *,
        runtime: ProcessRuntime,
        principal: Principal,
        record: SessionRecord | None,
        inbox: ChannelInbox,
        allowance: MessageAllowance | None,
    ) -> None:
        self.runtime = runtime
        self._inbox = inbox
        self._outbox = Outbox()
        self.session = session_for(
            runtime,
            principal,
            record,
            connection_id=inbox.channel,
            send=self._outbox.send,
            listen=inbox.listen,
            allowance=allowance,
            # A handshake-era session's subscriptions are only recorded here: its GET stream
            # watches them (ListenStream).
            watch_resources=record is None,
        )
        inbox.session = self.session

    @classmethod
    async def opened(
        cls,
        runtime: ProcessRuntime,
        principal: Principal,
        record: SessionRecord | None,
        allowance: MessageAllowance | None,
    ) -> "Exchange":
        """A new exchange, on a new channel of this process's layer."""
        inbox = await new_inbox(runtime)
        return cls(
            runtime=runtime, principal=principal, record=record, inbox=inbox, allowance=allowance
        )

    @property
    def idle(self) -> bool:
        """Whether it could serve another request of its session as a new one would: its
        session holds nothing (McpSession.is_idle) and its channel was never read."""
        return self.session.is_idle and not self._inbox.reading

    def resume(self, record: SessionRecord, allowance: MessageAllowance | None) -> None:
        """Serve the next request of its session (it ended `idle`), restored to `record` as
        a new one would be, its messages counted against `allowance`."""
        self._outbox.current = Outgoing()
        session = self.session
        session.restore(
            protocol_version=record.protocol_version,
            client_capabilities=record.client_capabilities,
            log_level=record.log_level,
        )
        session.features.restore_subscriptions(record.resource_subscriptions)
        session.use_allowance(allowance)

    async def handed(self, payload: dict[str, Any], message: Request | None = None) -> Outgoing:
        """Hand the request to the session (`message`: `payload` parsed already); what it
        sends for the request, in order, ending once the request has ended (a call run in
        this task has ended by now: its messages are all there)."""
        request_id = payload.get("id")
        outgoing = self._outbox.current
        if message is None:
            await self.session.receive(payload)
        else:
            # This request's task waits for it alone: a call that sends nothing before its
            # reply runs in it rather than in a task of its own.
            await self.session.receive_message(message, here=True)
        running = self.session.running_request(request_id)
        if running is None:
            outgoing.end()  # answered inline: everything it sent is queued already
        else:
            # Its response is queued before it ends; ended without one: cancelled by the client.
            running.add_done_callback(outgoing.end)
        return outgoing

    async def replies(
        self, payload: dict[str, Any], message: Request | None = None
    ) -> AsyncGenerator[Any, None]:
        """Hand the request to the session (`handed`); yield what it sends, the response
        last. A reader that stops at the response without reading on closes it (`aclose`):
        left suspended, it would be closed by a task of its own, made when the generator is
        freed (asyncio's finalizer hook)."""
        read = up_to_response(await self.handed(payload, message), payload.get("id"))
        try:
            async for sent in read:
                yield sent
        finally:
            await read.aclose()  # closed with this one, not left to the finalizer's task

    async def response(
        self, payload: dict[str, Any], request: Request | None = None
    ) -> dict[str, Any] | None:
        """Hand the request to the session; its response alone (None: it ended without one).
        Whatever else the session sends meanwhile is dropped: the client reads no stream."""
        reply = None
        async for message in self.replies(payload, request):
            if is_response_to(message, payload.get("id")):
                reply = message
        return reply

    async def deliver(self, payload: dict[str, Any]) -> None:
        """A notification or response the client sent for this request (e.g. its cancel)."""
        await self.session.receive(payload)

    # --- as the registry and the access guard see a connection ----------------------------
    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        """Broadcasts go to the session's GET stream, not here."""

    async def keep_alive(self, now: float) -> None:
        """Nothing to ping: the exchange ends with its response."""

    async def tenant_changed(
        self,
        enabled_tools: frozenset[str] | None,
        disabled_tools: frozenset[str],
        limits: TenantLimits,
    ) -> None:
        """A 2026-07-28 listen hears of the lists that changed; otherwise the next request of
        the session sees the new tool set and limits."""
        if self.session.features.open_listens:
            await self.session.tenant_changed(enabled_tools, disabled_tools, limits)

    async def going_away(self) -> None:
        """The server shuts down: say so on the stream and interrupt the call."""
        await self.session.going_away()

    async def revoke_access(self, code: int, reason: str) -> None:
        """The caller lost access: the call is cancelled as revoked."""
        await self.session.revoke_access(code, reason)

    async def close(self, reason: Stop | None = None) -> None:
        """Stop the session (cancelling what still runs, as `reason`) and its channel."""
        await self.session.close(reason=reason)
        await self._inbox.close()
