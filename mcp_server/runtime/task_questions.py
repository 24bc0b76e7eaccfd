"""A task's questions to its client under the tasks extension (2026-07-28): asked through the
task's `inputRequests`, answered by `tasks/update` from any process.

A tool in such a task asks as it always does (`ctx.elicit`, `ctx.create_message`): the
question gets a key unique over the task's life and goes into the operation's
`input_requests`, which history holds, so that a `tasks/get` on any web process shows the task
`input_required` with the question; the tool waits. `tasks/update` reaches the process that
runs the task (`operation.answer` to `mcp-runners`, or directly here), whose runner hands each
response to the question of its key; a key nobody waits for is ignored. Each change is also
told to the task's listeners (`operation.asking`: a listen's notifications/tasks). A question not
answered in `MCP_CLIENT_REQUEST_TIMEOUT` is a tool error, as an unanswered elicitation is.
"""

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcp_server.client_requests import ClientRequestError

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
        self._keys = itertools.count(1)
        self._open: dict[str, tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = {}

    def supports(self, capability: str, mode: str | None = None) -> bool:
        """Whether the request that made the task declared `capability` (and `mode`)."""
        declared = self.capabilities.get(capability)
        if not isinstance(declared, dict):
            return False
        if mode is None:
            return True
        return mode in declared if declared else mode == "form"

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Ask `method` of the client through the task, and wait for its answer."""
        if len(self._open) >= self.max_outstanding:
            raise ClientRequestError(
                f"Too many questions to the client at once (at most {self.max_outstanding})"
            )
        key = f"{method.replace('/', '-')}-{next(self._keys)}"
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._open[key] = ({"method": method, "params": params}, answer)
        self._publish()
        try:
            async with asyncio.timeout(self.timeout):
                return await answer
        except TimeoutError:
            raise ClientRequestError(
                f"The client did not answer {method} within {self.timeout:g} s"
            ) from None
        finally:
            # Unanswered (timed out, cancelled): no longer asked.
            if self._open.pop(key, None) is not None and self._operation.finished_at is None:
                self._publish()

    def answer(self, responses: dict[str, Any]) -> int:
        """Hand each response to the open question of its key (others are ignored: never
        asked, already answered); how many it answered."""
        answered = 0
        for key, response in responses.items():
            entry = self._open.get(key)
            if entry is None or not isinstance(response, dict):
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
        return {key: question for key, (question, _) in self._open.items()} or None

    async def _announce_now(self) -> None:
        assert self._announce is not None
        async with self._announcing:
            try:
                await self._announce(self._questions())
            except Exception:
                logger.warning("could not tell the listeners of a task's questions", exc_info=True)
