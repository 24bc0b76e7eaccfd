"""Tasks in the CLI without a server: when a call becomes a task, formatting, rendering, and the
runner's paths that a real server cannot be made to take on cue (Ctrl-C while reconnecting,
reconnection giving up, progress repeated after a re-attach), on a scripted session."""

import asyncio
import io
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from rich.console import Console

from mcp_server.cli.calls import CallOutcome, OutcomeKind, ToolCall
from mcp_server.cli.progress import JsonLinesCallRenderer, RichCallRenderer
from mcp_server.cli.reconnect import ReconnectFailed
from mcp_server.cli.session import ClientSession
from mcp_server.cli.task_commands import format_moment, format_ttl
from mcp_server.cli.tasks import (
    TaskCallRunner,
    TaskReconnectFailed,
    how_it_ended,
    runs_as_task,
    task_call_params,
    task_support,
    ttl_milliseconds,
)
from mcp_server.client.session import ConnectionLost, RpcError

TASK = {"taskId": "t-1", "status": "working", "ttl": 60_000, "pollInterval": 1000}
RESULT = {"content": [{"type": "text", "text": "done"}], "structuredContent": {"processed": 3}}


def tool(support: str | None) -> dict[str, Any]:
    """A tool definition with `execution.taskSupport` (none when `support` is None)."""
    definition: dict[str, Any] = {"name": "t", "inputSchema": {"type": "object"}}
    if support is not None:
        definition["execution"] = {"taskSupport": support}
    return definition


def test_a_call_is_a_task_when_asked_or_when_the_tool_requires_it() -> None:
    assert runs_as_task(tool("required"), requested=False)
    assert not runs_as_task(tool("optional"), requested=False)
    assert not runs_as_task(tool(None), requested=False)
    assert not runs_as_task(None, requested=False)  # not listed: the server will say
    assert runs_as_task(tool("forbidden"), requested=True)  # and the server refuses it
    assert task_support(tool("bogus")) == "forbidden"


def test_task_params_ttl_and_formatting() -> None:
    params = task_call_params(ToolCall("process_batch", {"count": 3}), "tok", None)
    assert params == {
        "name": "process_batch",
        "arguments": {"count": 3},
        "task": {},
        "_meta": {"progressToken": "tok"},
    }
    assert task_call_params(ToolCall("x"), "tok", 1500)["task"] == {"ttl": 1500}
    assert ttl_milliseconds(None) is None
    assert ttl_milliseconds(1.5) == 1500
    assert ttl_milliseconds(0.0001) == 1
    assert format_ttl(86_400_000) == "1 d"
    assert format_ttl(7_200_000) == "2 h"
    assert format_ttl(90_000) == "1.5 min"
    assert format_ttl(30_000) == "30 s"
    assert format_ttl(None) == "unlimited"
    assert format_moment("2026-11-22T06:03:50.946361Z") == "2026-11-22 06:03:50"


def test_how_a_task_ended_is_read_from_the_tasks_result_error() -> None:
    data = {"status": "interrupted", "taskId": "t-1", "operationId": "t-1"}
    assert how_it_ended(RpcError(-32603, "interrupted", data)) == "interrupted"
    assert how_it_ended(RpcError(-32603, "failed", {"taskId": "t-1"})) == "failed"
    assert how_it_ended(RpcError(-32602, "Unknown task: t-1")) is None


def outcome(kind: OutcomeKind, **fields: Any) -> CallOutcome:
    """A task's outcome with defaults."""
    values: dict[str, Any] = {"request_id": "r-1", "duration": 1.25, "task_id": "t-1"}
    return CallOutcome(kind=kind, **{**values, **fields})


def test_json_lines_of_a_task() -> None:
    stream = io.StringIO()
    renderer = JsonLinesCallRenderer(stream)
    renderer.task_created(TASK)
    renderer.attached(task_id="t-1", request_id="r-2", again=True)
    renderer.task_status({**TASK, "status": "completed"})
    renderer.finished(outcome(OutcomeKind.DETACHED, status="working", message="m"))
    renderer.finished(outcome(OutcomeKind.FAILED, status="cancelled", message="gone"))
    renderer.finished(outcome(OutcomeKind.COMPLETED, result=RESULT))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0] == {"event": "task", **TASK}
    assert lines[1] == {"event": "attached", "taskId": "t-1", "requestId": "r-2", "again": True}
    assert lines[2]["event"] == "task_status" and lines[2]["status"] == "completed"
    assert lines[3] == {
        "event": "detached",
        "message": "m",
        "requestId": "r-1",
        "durationSeconds": 1.25,
        "taskId": "t-1",
        "status": "working",
    }
    assert lines[4]["event"] == "failed" and lines[4]["status"] == "cancelled"
    assert lines[5]["event"] == "result" and lines[5]["taskId"] == "t-1"


def consoles() -> tuple[Console, io.StringIO, Console, io.StringIO]:
    """Plain consoles on string buffers (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    return Console(file=out, width=200), out, Console(file=err, width=200), err


def test_detached_for_people_prints_the_id_alone_on_stdout() -> None:
    console, out, error_console, err = consoles()
    renderer = RichCallRenderer(console, error_console, api_url="http://h/api", live=False)
    renderer.started(tool="process_batch", request_id="r-1", attempt=1)
    renderer.task_created(TASK)
    renderer.finished(outcome(OutcomeKind.DETACHED, status="working"))
    assert out.getvalue() == "t-1\n"
    assert "mcp-ws tasks result t-1" in err.getvalue()


def test_following_only_prints_no_duration_of_its_own() -> None:
    console, out, error_console, _ = consoles()
    renderer = RichCallRenderer(console, error_console, api_url="http://h/api")
    renderer.attached(task_id="t-1", request_id="r-1", again=False)
    renderer.finished(outcome(OutcomeKind.COMPLETED, result=RESULT))
    assert "Following task t-1" in out.getvalue()
    assert "done" in out.getvalue()
    assert "Duration" not in out.getvalue()


# --- the runner on a scripted session ------------------------------------------------------

Script = Callable[["FakeConnection", str, dict[str, Any]], Awaitable[dict[str, Any]]]


class FakeConnection:
    """A connection whose every request is answered by a script."""

    def __init__(self, session: "FakeSession", script: Script) -> None:
        self.session = session
        self.script = script
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.is_open = True
        self._ids = itertools.count(1)

    def new_request_id(self) -> str:
        """A fresh id."""
        return f"{id(self)}-{next(self._ids)}"

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, request_id: Any = None
    ) -> dict[str, Any]:
        """Record the request and answer it as the script says."""
        self.sent.append((method, params or {}))
        return await self.script(self, method, params or {})

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Record a notification."""
        self.sent.append((method, params or {}))

    def forget(self, request_id: Any) -> None:
        """Nothing is pending here."""

    async def close(self) -> None:
        """Closed."""
        self.is_open = False

    def progress(self, value: float) -> None:
        """The server sends progress for the task's token."""
        for handler in list(self.session.progress.values()):
            handler({"progress": value, "total": 10})


class FakeSession:
    """ClientSession's surface, over scripted connections (one per start or reconnect)."""

    def __init__(self, scripts: list[Script], reconnect: Callable[[], Awaitable[None]]) -> None:
        self._scripts = iter(scripts)
        self._reconnect = reconnect
        self._connection: FakeConnection | None = None
        self.opened: list[FakeConnection] = []
        self.progress: dict[Any, Callable[[dict[str, Any]], None]] = {}
        self.on_notice: Any = None

    def _open(self) -> FakeConnection:
        self._connection = FakeConnection(self, next(self._scripts))
        self.opened.append(self._connection)
        return self._connection

    @property
    def connection(self) -> FakeConnection:
        """The live connection."""
        assert self._connection is not None
        return self._connection

    async def start(self) -> FakeConnection:
        """The open connection, or a new one."""
        if self._connection is not None and self._connection.is_open:
            return self._connection
        return self._open()

    async def reconnect(self, reason: str) -> FakeConnection:
        """Drop the connection; the reconnect hook decides when (or whether) a new one opens."""
        self._connection = None
        await self._reconnect()
        return self._open()

    async def close(self) -> None:
        """Close the live connection."""
        if self._connection is not None:
            await self._connection.close()

    def subscribe_progress(self, token: Any, handler: Callable[[dict[str, Any]], None]) -> None:
        """Route a token's progress."""
        self.progress[token] = handler

    def unsubscribe_progress(self, token: Any) -> None:
        """Stop routing it."""
        self.progress.pop(token, None)

    def subscribe_task_status(self, task_id: str, handler: Any) -> None:
        """Not used by these scripts."""

    def unsubscribe_task_status(self, task_id: str) -> None:
        """Not used by these scripts."""


class Recorder:
    """TaskEvents that keep what they were told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: self.events.append((name, kwargs or args[0]))

    def named(self, name: str) -> list[Any]:
        """The payloads of the events called `name`."""
        return [payload for event, payload in self.events if event == name]


async def first_connection(connection: FakeConnection, method: str, params: Any) -> Any:
    """Creates the task; its tasks/result sends progress 5, then the connection drops."""
    if method == "tools/call":
        return {"task": TASK}
    connection.progress(5)
    connection.is_open = False
    raise ConnectionLost("the connection dropped (no close frame)")


def run(
    scripts: list[Script], reconnect: Callable[[], Awaitable[None]], cancel_after_drop: bool
) -> tuple[CallOutcome, Recorder, FakeSession]:
    """Run one task call on a scripted session; Ctrl-C once reconnection starts, if asked."""
    recorder = Recorder()
    sessions: list[FakeSession] = []

    async def main() -> CallOutcome:
        cancel = asyncio.Event()

        async def reconnect_hook() -> None:
            if cancel_after_drop:
                cancel.set()
            await reconnect()

        session = FakeSession(scripts, reconnect_hook)
        sessions.append(session)
        runner = TaskCallRunner(cast(ClientSession, session), cast(Any, recorder))
        return await runner.run(ToolCall("process_batch", {"count": 10}), cancel)

    outcome = asyncio.run(main())
    return outcome, recorder, sessions[0]


async def forever() -> None:
    """A reconnection that never succeeds by itself."""
    await asyncio.Event().wait()


async def at_once() -> None:
    """A reconnection that succeeds at once."""


def test_progress_repeated_after_a_re_attach_is_dropped_and_the_result_arrives() -> None:
    async def second(connection: FakeConnection, method: str, params: Any) -> Any:
        assert method == "tasks/result"
        assert params["taskId"] == "t-1"
        for value in (5, 4, 7, 10):  # where it was, an older value, then on
            connection.progress(value)
        return RESULT

    outcome, recorder, session = run([first_connection, second], at_once, cancel_after_drop=False)
    assert outcome.kind is OutcomeKind.COMPLETED
    assert outcome.result == RESULT and outcome.task_id == "t-1"
    assert [params["progress"] for params in recorder.named("progress")] == [5, 7, 10]
    assert [event["again"] for event in recorder.named("attached")] == [False, True]
    created = session.opened[0].sent[0][1]["_meta"]["progressToken"]
    resent = session.opened[1].sent[0][1]["_meta"]["progressToken"]
    assert resent == created, "the re-attach must use the task's progress token"


def test_ctrl_c_while_reconnecting_cancels_the_task_on_a_fresh_connection() -> None:
    async def second(connection: FakeConnection, method: str, params: Any) -> Any:
        assert method == "tasks/cancel"
        return {**TASK, "status": "cancelled"}

    outcome, _, session = run([first_connection, second], forever, cancel_after_drop=True)
    assert outcome.kind is OutcomeKind.CANCELLED
    assert outcome.task_id == "t-1" and outcome.status == "cancelled"
    assert "task t-1 is cancelled" in outcome.message
    assert session.opened[1].sent == [("tasks/cancel", {"taskId": "t-1"})]


def test_reconnection_giving_up_says_where_the_task_is_and_how_to_re_attach() -> None:
    async def give_up() -> None:
        raise ReconnectFailed("could not reconnect after 3 attempts (last error: refused)")

    with pytest.raises(TaskReconnectFailed) as raised:
        run([first_connection], give_up, cancel_after_drop=False)
    message = str(raised.value)
    assert "could not reconnect after 3 attempts" in message
    assert "task t-1 was left on the server" in message
    assert "mcp-ws tasks result t-1" in message
