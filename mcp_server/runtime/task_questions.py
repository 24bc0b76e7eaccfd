"""A task's questions to its client under the tasks extension (2026-07-28): asked through the
task's `inputRequests`, answered by `tasks/update` from any process.

A tool in such a task asks as it always does (`ctx.elicit`, `ctx.create_message`, `ctx.ask`):
each question keeps the key the tool gave it (as in a 2026-07-28 input round) and goes into
the operation's `input_requests`, which history holds, so that a `tasks/get` on any web
process shows the task `input_required` with the question; the tool waits. `tasks/update`
reaches the process that runs the task (`operation.answer` to `mcp-runners`, or directly
here), whose runner hands each response to the question of its key; a key nobody waits for,
or a response that is not a result of its request (input_required.check_response), is
ignored. Each change is also told to the task's listeners (`operation.asking`: a listen's
notifications/tasks). A question not answered in `MCP_CLIENT_REQUEST_TIMEOUT` is a tool
error, as an unanswered elicitation is.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from mcp_server.client_requests import ClientRequestError
from mcp_server.protocol.input_required import (
    InputRequest,
    InvalidInputResponse,
    check_response,
    declares,
)

if TYPE_CHECKING:
    from mcp_server.runtime.operation import RunningOperation

logger = logging.getLogger(__name__)
# Tells the task's listeners what it now asks (None: nothing).
Announce = Callable[[dict[str, Any] | None], Awaitable[None]]


class TaskQuestions:
    """The open questions of one running task (what a ToolContext asks its client through)."""

    def __init__(
        self,
        operation: "RunningOperation",
        *,
        capabilities: dict[str, Any],
        timeout: float,
        max_outstanding: int,
        announce: Announce | None = None,
    ) -> None:
        self._operation = operation
        self._announce = announce
        # Announcements go out one at a time, in order, each with the questions of its time.
        self._announcing = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self.capabilities = capabilities
        self.timeout = timeout
        self.max_outstanding = max_outstanding
        self._open: dict[str, tuple[InputRequest, asyncio.Future[dict[str, Any]]]] = {}
        self._answers: dict[str, dict[str, Any]] = {}

    def supports(self, capability: str, mode: str | None = None) -> bool:
        """Whether the request that made the task declared `capability` (and `mode`)."""
        return declares(self.capabilities, capability, mode)

    async def ask(self, requests: Mapping[str, InputRequest]) -> dict[str, dict[str, Any]]:
        """Put the keyed `requests` on the task at once and wait for all their answers; a key
        answered before is answered again from memory (a key names one question)."""
        new = {key: r for key, r in requests.items() if key not in self._answers}
        if len(self._open) + len(new) > self.max_outstanding:
            raise ClientRequestError(
                f"Too many questions to the client at once (at most {self.max_outstanding})"
            )
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        for key, request in new.items():
            if key in self._open:
                waiting[key] = self._open[key][1]
                continue
            waiting[key] = loop.create_future()
            self._open[key] = (request, waiting[key])
        if new:
            self._publish()
        try:
            async with asyncio.timeout(self.timeout):
                for key, answer in waiting.items():
                    self._answers[key] = await answer
        except TimeoutError:
            methods = ", ".join(sorted({new[key].method for key in waiting}))
            raise ClientRequestError(
                f"The client did not answer {methods} within {self.timeout:g} s"
            ) from None
        finally:
            # Unanswered (timed out, cancelled): no longer asked.
            dropped = [key for key in waiting if self._open.pop(key, None) is not None]
            if dropped and self._operation.finished_at is None:
                self._publish()
        return {key: self._answers[key] for key in requests}

    def answer(self, responses: dict[str, Any]) -> int:
        """Hand each response to the open question of its key (others are ignored: never
        asked, already answered, not a result of its request); how many it answered."""
        answered = 0
        for key, response in responses.items():
            entry = self._open.get(key)
            if entry is None or not isinstance(response, dict):
                continue
            try:
                check_response(key, entry[0].method, response)
            except InvalidInputResponse:
                continue
            del self._open[key]
            entry[1].set_result(response)
            answered += 1
        if answered:
            self._publish()
        return answered

    def _publish(self) -> None:
        """Show the open questions in history (input_required while there are some), and
        tell the task's listeners."""
        self._operation.input_requests = self._questions()
        self._operation.persist()
        if self._announce is not None:
            task = asyncio.get_running_loop().create_task(self._announce_now())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _questions(self) -> dict[str, Any] | None:
        return {key: request.as_wire() for key, (request, _) in self._open.items()} or None

    async def _announce_now(self) -> None:
        assert self._announce is not None
        async with self._announcing:
            try:
                await self._announce(self._questions())
            except Exception:
                logger.warning("could not tell the listeners of a task's questions", exc_info=True)
