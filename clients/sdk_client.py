"""The official MCP Python SDK 2.3 client (`mcp.Client` over its Streamable HTTP transport)
driving one scenario against a server, printing what it saw as one JSON object.

Runs in the `mcp-sdk` environment (clients/envs.py), not the project's (which pins mcp 1.30
for the WebSocket tests), so it imports nothing of the project; tests/http runs it as a
subprocess and judges the JSON. The token comes from MCP_TOKEN, never the command line.

    python clients/sdk_client.py URL session        # connect, list, add, a call with progress
    python clients/sdk_client.py URL cancel         # a long call cancelled after its progress
    python clients/sdk_client.py URL resume OTHER   # the call's stream drops after its first
                                                    # progress; the SDK resumes it at OTHER
    python clients/sdk_client.py URL confirm RUN accept|decline
                                                    # 2026-07-28: delete_run_thumbnails, its
                                                    # input-required question answered so

`--mode` is the SDK's own: `auto` (its default: it probes `server/discover` and so speaks
2026-07-28 to this server, each request self-describing, cancelled by closing its stream) or
`legacy` (the initialize handshake, a session, `notifications/cancelled`). `resume` is always
legacy: 2026-07-28 streams are not resumable.

    python clients/sdk_client.py URL task [OTHER]   # 2026-07-28 with the tasks extension: a
                                                    # long call answered as a task, polled
                                                    # with tasks/get (sent to OTHER when
                                                    # given) to its result

(The 2025-11-25 durable tasks are not here: the SDK 2.3 validates a task-augmented
tools/call's result as a CallToolResult and rejects the CreateTaskResult the server answers
with. The tasks extension it supports through a `ClientExtension` whose claim of
`resultType: "task"` resolves the task, as `task` does.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import ClientMessageMetadata
from pydantic import ConfigDict

TIMEOUT = httpx2.Timeout(30.0, read=300.0)
CALL_TIMEOUT_S = 60.0
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"


class DroppingTransport(httpx2.AsyncBaseTransport):
    """Sends to the URL it is given until the first streamed progress event of a tools/call,
    then breaks that stream (as a lost connection does) and sends everything after to
    `other`: a load balancer that failed over to another web process."""

    def __init__(self, other: str) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.other = httpx2.URL(other)
        self.dropped = False
        self.sent: list[str] = []  # "METHOD port" of each request, in order

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward the request; cut the stream of the first tools/call after its progress."""
        if self.dropped:
            request.url = request.url.copy_with(host=self.other.host, port=self.other.port)
            request.headers["Host"] = self.other.netloc.decode()
        self.sent.append(f"{request.method} {request.url.port}")
        response = await self.inner.handle_async_request(request)
        if self.dropped or request.method != "POST" or b'"tools/call"' not in request.content:
            return response
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_CutAfterProgress(response.stream, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self.inner.aclose()


class _CutAfterProgress(httpx2.AsyncByteStream):
    def __init__(self, stream: Any, owner: DroppingTransport) -> None:
        self.stream, self.owner = stream, owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = b""
        async for chunk in self.stream:
            yield chunk
            seen += chunk.replace(b"\r\n", b"\n")
            _, progress, after = seen.partition(b"notifications/progress")
            if progress and b"\n\n" in after:  # the whole progress event went through
                self.owner.dropped = True
                raise httpx2.ReadError("connection lost (dropped by the test client)")

    async def aclose(self) -> None:
        await self.stream.aclose()


# What follows a task: its polls, and the listen on its run's resource.
FOLLOWING = ("tasks/get", "subscriptions/listen")


class TaskRoutingTransport(httpx2.AsyncBaseTransport):
    """Sends every `tasks/get` and `subscriptions/listen` to `other` (by its Mcp-Method
    header), everything else to the URL it is given: a task made through one web process and
    followed through another."""

    def __init__(self, other: str | None) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.other = httpx2.URL(other) if other else None
        self.sent: list[str] = []  # "MCP-METHOD port" of each POST, in order

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward the request, a tasks/get to the other process."""
        method = request.headers.get("mcp-method")
        if self.other is not None and method in FOLLOWING:
            request.url = request.url.copy_with(host=self.other.host, port=self.other.port)
            request.headers["Host"] = self.other.netloc.decode()
        if request.method == "POST":
            self.sent.append(f"{method} {request.url.port}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the connections."""
        await self.inner.aclose()


class RecordingTransport(httpx2.AsyncBaseTransport):
    """Sends as usual, noting each POST's `Mcp-Method` header (None: not sent) and whether any
    response minted a session (`Mcp-Session-Id`)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.methods: list[str | None] = []
        self.session_ids: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward the request; note what it and its response said."""
        if request.method == "POST":
            self.methods.append(request.headers.get("mcp-method"))
        response = await self.inner.handle_async_request(request)
        if "mcp-session-id" in response.headers:
            self.session_ids.append(response.headers["mcp-session-id"])
        return response

    async def aclose(self) -> None:
        """Close the connections."""
        await self.inner.aclose()

    def seen(self) -> dict[str, Any]:
        """What the wire showed, for the JSON."""
        return {"mcp_methods": self.methods, "session_ids_minted": len(self.session_ids)}


@asynccontextmanager
async def connected(
    url: str,
    mode: str = "auto",
    transport: httpx2.AsyncBaseTransport | None = None,
    **options: Any,
) -> Any:
    """An initialized `mcp.Client` (negotiating as `mode` says, with further `options` of
    `mcp.Client`, e.g. an elicitation callback) with the bearer token."""
    token = os.environ.get("MCP_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=TIMEOUT, transport=transport) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        yield client


def dump(result: Any) -> Any:
    """A pydantic result as JSON-ready data."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def session(url: str, mode: str) -> dict[str, Any]:
    """Connect, list the tools, call add, then process_batch with progress."""
    progress: list[dict[str, Any]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append({"progress": value, "total": total, "message": message})

    wire = RecordingTransport()
    async with connected(url, mode, wire) as client:
        tools = await client.list_tools()
        added = await client.call_tool("add", {"a": 20, "b": 22})
        with anyio.fail_after(CALL_TIMEOUT_S):
            batch = await client.call_tool(
                "process_batch", {"count": 5, "item_ms": 20}, progress_callback=on_progress
            )
        discovered = client.session.discover_result
        return {
            "protocol_version": client.protocol_version,
            "server": dump(client.server_info) if client.server_info else None,
            "discovered": dump(discovered) if discovered is not None else None,
            "tools": [tool.name for tool in tools.tools],
            "add": dump(added),
            "batch": dump(batch),
            "progress": progress,
            **wire.seen(),
        }


async def cancel(url: str, mode: str) -> dict[str, Any]:
    """A long process_batch cancelled once its first progress arrived (legacy: the SDK sends
    notifications/cancelled; 2026-07-28: it closes the call's stream); then add on the same
    client, which still works."""
    first = anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        first.set()

    wire = RecordingTransport()
    async with connected(url, mode, wire) as client:
        with anyio.fail_after(CALL_TIMEOUT_S):
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    arguments = {"count": 100_000, "item_ms": 10}
                    await client.call_tool(
                        "process_batch", arguments, progress_callback=on_progress
                    )

                group.start_soon(call)
                await first.wait()
                group.cancel_scope.cancel()
        after = await client.call_tool("add", {"a": 1, "b": 2})
        return {
            "protocol_version": client.protocol_version,
            "cancelled_after_progress": first.is_set(),
            "add_after": dump(after),
            **wire.seen(),
        }


async def resume(url: str, other: str) -> dict[str, Any]:
    """process_batch with progress whose stream breaks after the first progress event; the
    SDK reconnects with Last-Event-ID, which reaches `other`, and gets the rest there."""
    progress: list[float] = []
    tokens: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_token(token: str) -> None:
        tokens.append(token)

    transport = DroppingTransport(other)
    async with connected(url, "legacy", transport) as client:
        params = types.CallToolRequestParams(
            name="process_batch", arguments={"count": 10, "item_ms": 50}
        )
        with anyio.fail_after(CALL_TIMEOUT_S):
            result = await client.session.send_request(
                types.CallToolRequest(params=params),
                types.CallToolResult,
                metadata=ClientMessageMetadata(on_resumption_token_update=on_token),
                progress_callback=on_progress,
            )
        return {
            "dropped": transport.dropped,
            "requests": transport.sent,
            "progress": progress,
            "event_ids": tokens,
            "result": dump(result),
        }


class CreatedTask(types.Result):
    """The tasks extension's CreateTaskResult (flat: the Task's fields beside resultType)."""

    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = "task"
    task_id: str
    status: str


class DetailedTask(types.Result):
    """A tasks/get result: the task, with its result inlined once completed."""

    model_config = ConfigDict(extra="allow")
    task_id: str
    status: str
    result: dict[str, Any] | None = None


class GetTask(types.GetTaskRequest):
    """tasks/get of the tasks extension: its HTTP request names the task in `Mcp-Name` (the
    SDK's own GetTaskRequest is the 2025-11-25 one, which does not)."""

    name_param = "taskId"


class TasksExtension(ClientExtension):
    """The tasks extension as a client of it: a task the server makes of a tools/call is
    polled with tasks/get until it ends."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.polled: list[str] = []
        # Set once connected: the task's run is also listened to (resource updates).
        self.client: Client | None = None
        self.honored: list[str] = []
        self.updates: list[str] = []
        self._updated = anyio.Event()

    def claims(self) -> list[ResultClaim[Any]]:
        """The CreateTaskResult of a tools/call, resolved by polling."""
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self.resolve)]

    async def resolve(self, created: CreatedTask, context: ClaimContext) -> types.CallToolResult:
        """Poll the task to its end; its inlined CallToolResult."""
        self.created.append(dump(created))
        params = types.GetTaskRequestParams(task_id=created.task_id)
        assert self.client is not None
        run = f"mcp-realtime://runs/{created.task_id}"
        with anyio.fail_after(CALL_TIMEOUT_S):
            async with (
                self.client.listen(resource_subscriptions=[run]) as updates,
                anyio.create_task_group() as readers,
            ):
                self.honored = list(updates.honored.resource_subscriptions or [])
                readers.start_soon(self._read, updates)
                while True:
                    task = await context.session.send_request(GetTask(params=params), DetailedTask)
                    self.polled.append(task.status)
                    if task.status in ("completed", "failed", "cancelled"):
                        break
                    await anyio.sleep(0.1)
                # The run's end is an update too: wait for one, then stop listening.
                await self._updated.wait()
                readers.cancel_scope.cancel()
        if task.result is None:
            raise RuntimeError(f"the task ended {task.status} without a result")
        return types.CallToolResult.model_validate(task.result)

    async def _read(self, updates: Any) -> None:
        """Note the URI of each resource update the listen brings."""
        async for event in updates:
            self.updates.append(str(getattr(event, "uri", type(event).__name__)))
            self._updated.set()


async def task(url: str, other: str | None) -> dict[str, Any]:
    """2026-07-28 with the tasks extension: process_batch made a task, polled to its end (at
    `other` when given)."""
    token = os.environ.get("MCP_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    tasks = TasksExtension()
    routing = TaskRoutingTransport(other)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=TIMEOUT, transport=routing) as http,
        Client(streamable_http_client(url, http_client=http), extensions=[tasks]) as client,
    ):
        tasks.client = client
        with anyio.fail_after(CALL_TIMEOUT_S):
            result = await client.call_tool("process_batch", {"count": 40, "item_ms": 50})
        return {
            "protocol_version": client.protocol_version,
            "created": tasks.created,
            "polled": tasks.polled,
            "honored": tasks.honored,
            "updates": tasks.updates,
            "requests": routing.sent,
            "result": dump(result),
        }


async def confirm(url: str, run_id: str, action: str) -> dict[str, Any]:
    """On 2026-07-28 (no handshake), call delete_run_thumbnails; the SDK answers the
    input-required result's elicitation through its callback (`action`: accept with
    confirm=true, or decline) and retries the call with the answer and the request state."""
    asked: list[str] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        if action == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    async with connected(url, mode="2026-07-28", elicitation_callback=on_elicit) as client:
        with anyio.fail_after(CALL_TIMEOUT_S):
            result = await client.call_tool("delete_run_thumbnails", {"run_id": run_id})
        return {"protocol_version": client.protocol_version, "asked": asked, "result": dump(result)}


def main() -> int:
    """Run the scenario named on the command line; print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("scenario", choices=("session", "cancel", "resume", "task", "confirm"))
    parser.add_argument(
        "other",
        nargs="?",
        help="for resume and task: the URL of the other web process; for confirm: a run",
    )
    parser.add_argument("answer", nargs="?", default="accept", help="for confirm: accept|decline")
    parser.add_argument("--mode", choices=("auto", "legacy"), default="auto")
    args = parser.parse_args()
    runs = {
        "session": lambda: session(args.url, args.mode),
        "cancel": lambda: cancel(args.url, args.mode),
        "resume": lambda: resume(args.url, args.other),
        "task": lambda: task(args.url, args.other),
        "confirm": lambda: confirm(args.url, args.other, args.answer),
    }
    print(json.dumps(anyio.run(runs[args.scenario])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
