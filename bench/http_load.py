"""The Streamable HTTP scenarios: an MCP client over HTTP (aiohttp) that initializes once per
virtual user and then calls `add` back to back, and the time to the first progress of a
streaming call. Run by the load generator against this service, FastMCP and django-mcpz."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson

from bench.report import HTTP, MODERN, Goal, Goals
from bench.scenarios import (
    CLIENT_NAME,
    FIRST_ARGUMENTS,
    META,
    Caller,
    FirstProgress,
    LoadTarget,
    ModernThroughput,
    Throughput,
    envelope_goals,
)
from mcp_server.client.http import (
    ACCEPT_BOTH,
    SESSION_HEADER,
    VERSION_HEADER,
    mirrored_headers,
)
from mcp_server.client.raw import UnexpectedReply
from mcp_server.client.wire import (
    INITIALIZED,
    PROTOCOL_VERSION,
    JsonObject,
    initialize_params,
    request_frame,
    tool_call_params,
    with_request_meta,
)

# The servers that speak Streamable HTTP, and the ones with a streaming (progress) tool.
HTTP_TARGETS = ("service", "fastmcp", "mcpz")
PROGRESS_TARGETS = ("service", "fastmcp")
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60.0)


class LoadSession:
    """A virtual user's MCP session over Streamable HTTP on aiohttp, for the hot loops (the
    client binding, mcp_server.client.http, is on httpx): its session id (when the server
    issues one) and bearer token go on every request; a response comes as JSON or as SSE."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        bearer: str | None,
        meta: JsonObject | None = None,
    ) -> None:
        """A session; with `meta`, a 2026-07-28 client's, that never initializes and sends
        `meta` and the headers that mirror it with every request."""
        self.http, self.url, self.meta = http, url, meta
        self.headers = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}
        if bearer:
            self.headers["Authorization"] = f"Bearer {bearer}"
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, bearer: str | None) -> LoadSession:
        """`initialize` (taking the session id), then `notifications/initialized`."""
        session = cls(http, url, bearer)
        params = initialize_params(CLIENT_NAME, "1.0")
        frame = request_frame(0, "initialize", params)
        async with http.post(url, data=frame, headers=session.headers) as response:
            reply = await session._reply(response, 0, None)
            if "result" not in reply:
                raise UnexpectedReply(f"initialize failed: {reply!r:.300}")
            session_id = response.headers.get(SESSION_HEADER)
        session.headers[VERSION_HEADER] = PROTOCOL_VERSION
        if session_id:
            session.headers[SESSION_HEADER] = session_id
        async with http.post(url, data=INITIALIZED, headers=session.headers) as response:
            if response.status != 202:
                raise UnexpectedReply(f"notifications/initialized: HTTP {response.status}")
        return session

    async def close(self) -> None:
        """End the session (DELETE) when the server issued one, as a well-behaved client does."""
        if SESSION_HEADER in self.headers:
            async with self.http.delete(self.url, headers=self.headers) as response:
                await response.read()

    async def request(
        self, method: str, params: Any, on_message: Callable[[JsonObject], None] | None = None
    ) -> JsonObject:
        """Send a request; its response, messages before it (progress) to `on_message`."""
        request_id, headers = next(self._ids), self.headers
        if self.meta is not None:
            params = with_request_meta(params, self.meta)
            headers = {**headers, **mirrored_headers(method, params)}
        body = request_frame(request_id, method, params)
        async with self.http.post(self.url, data=body, headers=headers) as response:
            return await self._reply(response, request_id, on_message)

    async def _reply(
        self,
        response: aiohttp.ClientResponse,
        request_id: int,
        on_message: Callable[[JsonObject], None] | None,
    ) -> JsonObject:
        if response.status != 200:
            text = await response.text()
            raise UnexpectedReply(f"HTTP {response.status} for id {request_id}: {text!r:.300}")
        async for message in _messages(response):
            if "method" not in message and message.get("id") == request_id:
                return message
            if on_message is not None:
                on_message(message)
        raise UnexpectedReply(f"the response stream ended without the reply to {request_id}")


async def _messages(response: aiohttp.ClientResponse) -> AsyncIterator[JsonObject]:
    """The JSON-RPC messages of a JSON body, or of an SSE body, each as soon as its event is
    complete (`data:` lines joined; an event with empty data, such as a priming one, skipped)."""
    if response.content_type == "application/json":
        yield orjson.loads(await response.read())
        return
    data: list[bytes] = []
    async for raw in response.content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if payload := b"\n".join(data):
                yield orjson.loads(payload)
            data = []
        elif line.startswith(b"data:"):
            data.append(line[6:] if line.startswith(b"data: ") else line[5:])


def http_client() -> aiohttp.ClientSession:
    """The load generator's HTTP client: no connection limit, keep-alive, no cookies."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    return aiohttp.ClientSession(
        connector=connector, timeout=REQUEST_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar()
    )


def http_url(target: LoadTarget) -> str:
    """The target's Streamable HTTP endpoint."""
    if target.http_url is None:
        raise RuntimeError("this scenario needs the target's HTTP endpoint (--http-url)")
    return target.http_url


async def call_add(session: LoadSession) -> None:
    """One `tools/call` of `add` (1 + 2), its reply checked: the hot loop's step."""
    reply = await session.request("tools/call", tool_call_params("add", {"a": 1, "b": 2}))
    result = reply.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise UnexpectedReply(f"add failed: {reply!r:.300}")
    structured = result.get("structuredContent")
    if not isinstance(structured, dict) or structured.get("result") != 3:
        raise UnexpectedReply(f"unexpected add result: {reply!r:.300}")


HTTP_GOALS: dict[int, Goals] = {
    50: {
        "calls_per_s": (
            Goal("HTTP calls/s at C=50, vs FastMCP", 5.0, True, baseline="fastmcp"),
            Goal("HTTP calls/s at C=50, vs django-mcpz", 2.0, True, baseline="mcpz"),
        ),
    },
    1: {"p50_us": (Goal("HTTP p50 latency at C=1, vs FastMCP", 0.5, False, baseline="fastmcp"),)},
}


@dataclass(frozen=True)
class HttpThroughput(Throughput):
    """C virtual users over Streamable HTTP, each initialized once, then back-to-back
    `tools/call add`: calls/s, latency, CPU."""

    kind: ClassVar[str] = "http-throughput"
    targets: ClassVar[tuple[str, ...] | None] = HTTP_TARGETS
    title: ClassVar[str] = "HTTP throughput C={concurrency}"
    prefix: ClassVar[str] = "http.c"
    label_prefix: ClassVar[str] = "HTTP "
    section: ClassVar[str] = HTTP
    goals: ClassVar[dict[int, Goals]] = HTTP_GOALS

    async def load(self, target: LoadTarget) -> tuple[list[float], tuple[Any, Any]]:
        url, meta = http_url(target), self.request_meta
        async with http_client() as http:
            if meta is not None:
                sessions = [
                    LoadSession(http, url, target.bearer, meta) for _ in range(self.concurrency)
                ]
            else:
                opening = (
                    LoadSession.open(http, url, target.bearer) for _ in range(self.concurrency)
                )
                sessions = list(await asyncio.gather(*opening))
            readings = await self.loops(target, [functools.partial(call_add, s) for s in sessions])
            await asyncio.gather(*(session.close() for session in sessions))
        return readings


@dataclass(frozen=True)
class HttpModernThroughput(HttpThroughput):
    """C stateless HTTP clients, each doing back-to-back 2026-07-28 `tools/call add`."""

    kind: ClassVar[str] = "http-modern-throughput"
    title: ClassVar[str] = "HTTP 2026-07-28 throughput C={concurrency}"
    prefix: ClassVar[str] = "modern.http.c"
    label_prefix: ClassVar[str] = "HTTP 2026-07-28 "
    section: ClassVar[str] = MODERN
    goals: ClassVar[dict[int, Goals]] = envelope_goals(HttpThroughput.prefix, "HTTP")
    request_meta: ClassVar[JsonObject | None] = META
    applies_to = ModernThroughput.applies_to


@dataclass(frozen=True)
class HttpFirstProgress(FirstProgress):
    """FirstProgress on one Streamable HTTP session: from sending the POST to its progress
    event, and to the response."""

    kind: ClassVar[str] = "http-first-progress"
    targets: ClassVar[tuple[str, ...] | None] = PROGRESS_TARGETS
    title: ClassVar[str] = "HTTP first progress x{calls}"
    prefix: ClassVar[str] = "http.fp"
    label_prefix: ClassVar[str] = "HTTP: "
    section: ClassVar[str] = HTTP

    @contextlib.asynccontextmanager
    async def caller(self, target: LoadTarget) -> AsyncIterator[Caller]:
        """One session's call of the scenario, for a progress token."""
        async with http_client() as http:
            session = await LoadSession.open(http, http_url(target), target.bearer)

            async def call(token: str) -> tuple[float, float]:
                seen: list[float] = []

                def note(message: JsonObject) -> None:
                    if message.get("method") == "notifications/progress":
                        if (message.get("params") or {}).get("progressToken") != token:
                            raise UnexpectedReply(f"progress for another token: {message!r:.300}")
                        seen.append(time.perf_counter())

                sent = time.perf_counter()
                params = tool_call_params("process_batch", FIRST_ARGUMENTS, token)
                response = await session.request("tools/call", params, note)
                done = time.perf_counter()
                structured = (response.get("result") or {}).get("structuredContent") or {}
                if not seen or structured.get("processed") != 1:
                    raise UnexpectedReply(f"{token}: no progress or {response!r:.300}")
                return seen[0] - sent, done - sent

            yield call
            await session.close()


# What the servers that speak only Streamable HTTP run.
HTTP_KINDS = (HttpThroughput.kind, HttpFirstProgress.kind)
