"""The client's session across connections: the live connection and notification routing.

Calls subscribe to their progress token, tasks to their `notifications/tasks/status` by task
id; `notifications/message` goes to one notice handler. After a drop, `reconnect` opens a new
connection with the same routing, so re-attaching to a durable task (tasks.py) only needs the
new connection, the task's id and the progress token.
"""

from collections.abc import Callable
from typing import Any

from mcp_server.cli.config import ClientConfig
from mcp_server.cli.reconnect import Backoff, ReconnectListener, Reconnector
from mcp_server.client.session import JsonObject, McpConnection

ProgressHandler = Callable[[JsonObject], None]
NoticeHandler = Callable[[JsonObject], None]
TaskStatusHandler = Callable[[JsonObject], None]


class ClientSession:
    """One CLI invocation's view of the server: current connection, reconnection, routing."""

    def __init__(self, config: ClientConfig, backoff: Backoff, listener: ReconnectListener) -> None:
        self.config = config
        self._reconnector = Reconnector(self._open, backoff, listener)
        self._connection: McpConnection | None = None
        self._progress: dict[Any, ProgressHandler] = {}
        self._task_status: dict[str, TaskStatusHandler] = {}
        self.on_notice: NoticeHandler | None = None

    async def _open(self) -> McpConnection:
        return await McpConnection.open(
            self.config.url, token=self.config.token, on_notification=self._route
        )

    @property
    def connection(self) -> McpConnection:
        """The live connection (after `start`)."""
        if self._connection is None:
            raise RuntimeError("the session is not started")
        return self._connection

    async def start(self) -> McpConnection:
        """Open the first connection (one attempt), or return the one already open."""
        if self._connection is not None and self._connection.is_open:
            return self._connection
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self._connection = await self._reconnector.connect()
        return self._connection

    async def reconnect(self, reason: str) -> McpConnection:
        """Replace a dropped connection, with backoff (ReconnectFailed when it gives up)."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self._connection = await self._reconnector.reconnect(reason)
        return self._connection

    async def close(self) -> None:
        """Close the live connection, if any."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def subscribe_progress(self, token: Any, handler: ProgressHandler) -> None:
        """Send `notifications/progress` of `token` to `handler`."""
        self._progress[token] = handler

    def unsubscribe_progress(self, token: Any) -> None:
        """Stop routing a token's progress."""
        self._progress.pop(token, None)

    def subscribe_task_status(self, task_id: str, handler: TaskStatusHandler) -> None:
        """Send `notifications/tasks/status` of task `task_id` to `handler`."""
        self._task_status[task_id] = handler

    def unsubscribe_task_status(self, task_id: str) -> None:
        """Stop routing a task's status notifications."""
        self._task_status.pop(task_id, None)

    def _route(self, method: str, params: JsonObject) -> None:
        if method == "notifications/progress":
            handler = self._progress.get(params.get("progressToken"))
            if handler is not None:
                handler(params)
        elif method == "notifications/tasks/status":
            status_handler = self._task_status.get(str(params.get("taskId")))
            if status_handler is not None:
                status_handler(params)
        elif method == "notifications/message" and self.on_notice is not None:
            self.on_notice(params)
