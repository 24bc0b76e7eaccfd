"""The context object every tool call runs with; tools see nothing of the wire."""

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from accounts.principal import Principal
from mcp_server.client_requests import (
    ClientCapabilityMissing,
    ClientRequestError,
)
from mcp_server.protocol.input_required import (
    NEEDS,
    InputRequest,
    InputRound,
    elicitation_request,
    roots_request,
    sampling_request,
)
from mcp_server.runtime import fanout
from mcp_server.runtime.limits import SlotKey

if TYPE_CHECKING:
    from mcp_server.runtime.operation import RunningOperation
    from mcp_server.runtime.progress import ProgressCoalescer

T = TypeVar("T")


class OperationCancelled(Exception):
    """Raised inside a tool (on its worker thread) when its operation was cancelled."""


class CallEvents(Protocol):
    """Where a running call's events go (the session implements it for its connection)."""

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        """Deliver a log message, if the client's logging level lets it through."""


class AsksClient(Protocol):
    """What a tool's questions to its client go through when they wait for the answer: the
    connection's requests to it (ClientRequests), or a task of the tasks extension
    (TaskQuestions). A 2026-07-28 plain call answers from its InputRound instead."""

    def supports(self, capability: str, mode: str | None = None) -> bool:
        """Whether the client declared `capability` (and its mode `mode`)."""

    async def ask(self, requests: Mapping[str, InputRequest]) -> dict[str, dict[str, Any]]:
        """Ask the client the keyed `requests`; its answers by key."""


class ToolContext:
    """What a tool may use while it runs: progress, cancellation, logs and item errors.

    `progress` and `item_error` may be called from any thread (a sync tool runs on a worker
    thread); `log` is a coroutine for tools on the event loop.
    """

    __slots__ = (
        "_asked",
        "_chunks",
        "_client",
        "_events",
        "_idempotent",
        "_inputs",
        "_loop",
        "_loop_thread",
        "_operation",
        "_progress",
        "_settle",
    )

    def __init__(
        self,
        *,
        operation: "RunningOperation",
        events: CallEvents,
        progress: "ProgressCoalescer | None" = None,
        client: AsksClient | None = None,
        chunks: fanout.ChunkExecutor | None = None,
        idempotent: bool = False,
        inputs: InputRound | None = None,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._operation = operation
        self._events = events
        self._progress = progress
        # The connection's requests to its client, or a tasks-extension task's questions;
        # None where the call runs away from the connection (a 2025 task, a worker), which
        # therefore cannot ask the client anything.
        self._client = client
        # Where fan-out chunks run (None: this process's pool, made on first use); whether a
        # chunk lost with its worker may run again (the tool's idempotentHint).
        self._chunks = chunks
        self._idempotent = idempotent
        # A 2026-07-28 request's input round: questions are answered from it, or end the
        # request as an input-required result (then no request to the client is made); for a
        # tasks-extension task (a `client` too) what it lacks is asked through the task.
        self._inputs = inputs
        self._asked = 0
        self._settle = settle
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @property
    def principal(self) -> Principal:
        """Who called."""
        return self._operation.principal

    @property
    def tool_name(self) -> str:
        """The tool being run."""
        return self._operation.tool_name

    @property
    def operation_id(self) -> str:
        """The history id of this call (the run's id in the REST API)."""
        return str(self._operation.id)

    @property
    def cancelled(self) -> bool:
        """Whether the call was cancelled; a loop that does not await should check it."""
        return self._operation.cancel_requested

    def raise_if_cancelled(self) -> None:
        """Raise OperationCancelled when the call was cancelled (for code on worker threads)."""
        if self._operation.cancel_requested:
            raise OperationCancelled(self.operation_id)

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report `done` of `total` items; cheap enough to call for every item."""
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._report, done, total, message)
        else:
            self._report(done, total, message)

    def _report(self, done: float, total: float | None, message: str | None) -> None:
        self._operation.report(done, total, message)
        if self._progress is not None:
            self._progress.report(done, total, message)

    async def history_settled(self) -> None:
        """Wait until history holds what this process recorded, so a run the caller was
        just told of (e.g. by the call before this one) can be read."""
        if self._settle is not None:
            await self._settle()

    def item_error(self, item: str, message: str) -> None:
        """Record that one item failed; the run goes on."""
        self._operation.add_item_error(item, message)

    async def log(self, level: str, message: Any) -> None:
        """Send `message` to the client as `notifications/message` at `level` (RFC 5424 name)."""
        await self._events.log(level, message, self.tool_name)

    def supports(self, capability: str, mode: str | None = None) -> bool:
        """Whether the client declared `capability` (e.g. "elicitation", "sampling", "roots";
        `mode` e.g. "form"), so a tool can ask only what the client can answer."""
        if self._inputs is not None:
            return self._inputs.supports(capability, mode)
        return self._client is not None and self._client.supports(capability, mode)

    async def ask(self, requests: Mapping[str, InputRequest]) -> dict[str, dict[str, Any]]:
        """Ask the client for several inputs at once (keys are the tool's own, unique in the
        call); their results by key.

        Handshake era: one request to the client after another. A tasks-extension task: the
        answers its rounds gathered before it was made, the rest put on the task
        (input_required, answered by tasks/update). 2026-07-28 otherwise: the answers the
        retry brought, or, when some are missing, the call ends here as an input-required
        result asking for them and runs again from the start when the client retries: code
        before the question must be safe to run again (ask before changing anything).
        ClientRequestError (a tool error for the caller) when the client cannot be asked.
        """
        for request in requests.values():
            needs = NEEDS.get(request.method)
            if needs is None:
                raise ValueError(f"{request.method!r} is not a request a client can be asked")
            self._check_declared(*needs)
        if self._inputs is None:
            return await self._client_for().ask(requests)
        if self._client is None:
            return self._inputs.take(requests)
        # A task made on the final round of an input-required exchange: what the rounds
        # gathered answers here, the rest goes on the task.
        known = self._inputs.known(requests)
        rest = {key: request for key, request in requests.items() if key not in known}
        asked = await self._client.ask(rest) if rest else {}
        return {key: known[key] if key in known else asked[key] for key in requests}

    async def elicit(
        self, message: str, requested_schema: dict[str, Any], *, key: str | None = None
    ) -> dict[str, Any]:
        """Ask the user, through the client, for input of `requested_schema` (form mode);
        the client's ElicitResult (`action`, and `content` when accepted). `key` names the
        question across rounds (default: its place among the call's questions)."""
        return await self._ask_one(key, elicitation_request(message, requested_schema))

    async def create_message(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        options: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Ask the client's model for a completion of `messages` (sampling); its
        CreateMessageResult. `options` are further CreateMessageRequest params as the wire
        names them (e.g. `modelPreferences`, `temperature`)."""
        request = sampling_request(
            messages, max_tokens=max_tokens, system_prompt=system_prompt, options=options
        )
        return await self._ask_one(key, request)

    async def list_roots(self, *, key: str | None = None) -> dict[str, Any]:
        """The client's roots (ListRootsResult: `roots`, each with a `uri`)."""
        return await self._ask_one(key, roots_request())

    async def _ask_one(self, key: str | None, request: InputRequest) -> dict[str, Any]:
        self._asked += 1
        name = key if key is not None else f"input-{self._asked}"
        return (await self.ask({name: request}))[name]

    def _check_declared(self, capability: str, mode: str | None) -> None:
        if self._inputs is None:
            self._client_for()
        if not self.supports(capability, mode):
            declared = f"the {capability} capability" + (f" ({mode} mode)" if mode else "")
            raise ClientCapabilityMissing(
                f"The client did not declare {declared}: {self.tool_name!r} cannot ask it"
            )

    def _client_for(self) -> AsksClient:
        if self._client is None:
            raise ClientRequestError(
                f"{self.tool_name!r} cannot ask the client from here: only a call run in the "
                "process that holds the connection, a tasks-extension task or a 2026-07-28 "
                "request can (not a 2025 task, not a handshake-era call run on a worker)"
            )
        return self._client

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking or CPU-bound work on a worker thread.

        A thread cannot be stopped: when the call is cancelled, this waits for the item in hand
        to finish (so the tool's cleanup never races with it) and then raises CancelledError.
        """
        work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait({work})
            raise

    async def fan_out(
        self,
        fn: fanout.ItemFunction,
        items: Sequence[Any],
        *,
        chunk_size: int | None = None,
        label: Callable[[Any], str] = str,
        **params: Any,
    ) -> fanout.FanOutResult:
        """Run the `@chunk_function` `fn(item, **params)` over `items` in parallel chunks (on
        this process's cores, or on any free worker), in item order in the result.

        Progress adds up the chunks' items; an item whose function raises ItemFailed goes to
        the error log as `label(item)`; cancelling the call stops every chunk. FanOutRefused
        (before any chunk) when the call is outside MCP_FANOUT_* bounds.
        """
        chunks = self._chunks
        if chunks is None:
            from mcp_server.runtime.chunk_pool import local_chunks

            chunks = local_chunks()
        principal = self._operation.principal
        return await fanout.fan_out(
            executor=chunks,
            report=self,
            operation_id=self.operation_id,
            key=SlotKey(principal.tenant_id, principal.user_id, self._operation.connection_id),
            idempotent=self._idempotent,
            fn=fn,
            items=items,
            params=params,
            chunk_size=chunk_size,
            label=label,
            bounds=fanout.FanOutBounds.from_settings(),
        )
