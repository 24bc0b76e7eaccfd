"""One MCP connection over WebSocket: handshake, requests with futures, notifications.

A reader task owns the socket's input. Responses resolve the future of their request id;
notifications go to a callback; a dropped socket fails every pending request with
`ConnectionLost`, which is what the reconnecting layer above acts on. A connection opened
`modern` speaks 2026-07-28 instead: no initialize, `server/discover` to learn the server, and
the client's `_meta` (its version, capabilities and name) on every request.
"""

import asyncio
import contextlib
import itertools
import json
import secrets
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from mcp_server.cli.config import redact_url
from mcp_server.client.wire import (
    LOG_LEVEL_KEY,
    MODERN_VERSION,
    OPEN_TIMEOUT,
    JsonObject,
    RequestId,
    encode,
    initialize_params,
    open_socket,
    request_meta,
    with_request_meta,
)
from mcp_server.protocol.modern import SERVER_INFO_KEY

CLOSE_TIMEOUT = 2.0
AUTH_CLOSE_CODES = frozenset({4401, 4403})
NotificationHandler = Callable[[str, JsonObject], None]


class ConnectError(Exception):
    """The server could not be reached or refused the WebSocket upgrade (worth retrying)."""


class AuthenticationRefused(Exception):
    """The server refused the credentials (401/403): retrying will not help."""


class ConnectionLost(Exception):
    """The connection dropped while requests were waiting for their response."""


class RpcError(Exception):
    """A JSON-RPC error response."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (JSON-RPC error {code})")
        self.code = code
        self.message = message
        self.data = data


def client_version() -> str:
    """The installed package version, sent as clientInfo.version."""
    try:
        return version("mcp-realtime")
    except PackageNotFoundError:
        return "0.0.0"


def _refusal_reason(exc: InvalidStatus) -> str:
    response = exc.response
    try:
        body = json.loads(bytes(response.body or b"").decode("utf-8", "replace"))
        detail = str(body.get("error") or body.get("detail") or "")
    except (ValueError, AttributeError):
        detail = ""
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


def _close_description(ws: ClientConnection) -> str:
    code = ws.close_code
    reason = ws.close_reason
    if code is None or code == 1006:
        return "the connection dropped (no close frame)"
    return f"the server closed the connection (code {code}{', ' + reason if reason else ''})"


class McpConnection:
    """An initialized MCP session on one WebSocket (or, `modern`, a socket carrying
    2026-07-28 requests, each describing its client)."""

    def __init__(
        self,
        ws: ClientConnection,
        on_notification: NotificationHandler,
        *,
        modern: bool = False,
        capabilities: JsonObject | None = None,
    ) -> None:
        self._ws = ws
        # The `_meta` every 2026-07-28 request carries (None: the handshake era).
        self._meta = (
            request_meta("mcp-ws", client_version(), capabilities=capabilities) if modern else None
        )
        self._on_notification = on_notification
        self._pending: dict[RequestId, asyncio.Future[JsonObject]] = {}
        self._prefix = f"mcp-ws-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)
        self._lost: ConnectionLost | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._read())
        self.server_info: JsonObject = {}
        self.protocol_version: str | None = None
        # A modern connection's server/discover result (versions, capabilities, caching).
        self.discovered: JsonObject = {}

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        token: str | None,
        on_notification: NotificationHandler,
        open_timeout: float = OPEN_TIMEOUT,
        modern: bool = False,
        capabilities: JsonObject | None = None,
    ) -> "McpConnection":
        """Connect, authenticate with a bearer header and complete the MCP handshake (or,
        `modern`, discover the server; `capabilities` go in every request's `_meta`)."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await open_socket(
                url,
                headers=headers,
                open_timeout=open_timeout,
                close_timeout=CLOSE_TIMEOUT,
                proxy=True,
            )
        except InvalidStatus as exc:
            reason = _refusal_reason(exc)
            if exc.response.status_code in (401, 403):
                raise AuthenticationRefused(
                    f"{redact_url(url)} refused the credentials ({reason})"
                ) from None
            raise ConnectError(f"{redact_url(url)} refused the connection ({reason})") from None
        except InvalidURI:
            raise ConnectError(f"not a valid WebSocket URL: {redact_url(url)}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            detail = str(exc) or type(exc).__name__
            raise ConnectError(f"cannot connect to {redact_url(url)}: {detail}") from None
        connection = cls(ws, on_notification, modern=modern, capabilities=capabilities)
        first = "server/discover" if modern else "initialize"
        try:
            await asyncio.wait_for(connection._initialize(), open_timeout)
        except TimeoutError:
            await connection.close()
            raise ConnectError(
                f"{redact_url(url)} did not answer {first} within {open_timeout:g} s"
            ) from None
        except ConnectionLost as exc:
            await connection.close()
            if ws.close_code in AUTH_CLOSE_CODES:
                reason = ws.close_reason or f"close code {ws.close_code}"
                raise AuthenticationRefused(
                    f"{redact_url(url)} refused the credentials ({reason})"
                ) from None
            raise ConnectError(f"{redact_url(url)}: {exc}") from None
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _initialize(self) -> None:
        if self._meta is not None:
            found = await self.request("server/discover")
            self.server_info = dict((found.get("_meta") or {}).get(SERVER_INFO_KEY) or {})
            self.protocol_version = MODERN_VERSION
            self.discovered = found
            return
        result = await self.request("initialize", initialize_params("mcp-ws", client_version()))
        self.server_info = dict(result.get("serverInfo") or {})
        self.protocol_version = result.get("protocolVersion")
        await self.notify("notifications/initialized")

    @property
    def modern(self) -> bool:
        """Whether this connection speaks 2026-07-28 (every request carrying its `_meta`)."""
        return self._meta is not None

    def new_request_id(self) -> str:
        """A request id unique to this client process (also usable as a progress token)."""
        return f"{self._prefix}-{next(self._ids)}"

    @property
    def is_open(self) -> bool:
        """Whether the socket is still usable."""
        return self._lost is None and not self._reader.done()

    async def send(self, message: JsonObject) -> None:
        """Send one JSON-RPC message as a text frame."""
        if self._lost is not None:
            raise self._lost
        try:
            await self._ws.send(encode(message))
        except ConnectionClosed:
            raise ConnectionLost(_close_description(self._ws)) from None

    async def request(
        self,
        method: str,
        params: JsonObject | None = None,
        *,
        request_id: RequestId | None = None,
        log_level: str | None = None,
    ) -> JsonObject:
        """Send a request and wait for its result; RpcError or ConnectionLost otherwise.

        On a modern connection the request carries the client's `_meta`, asking for its log
        messages from `log_level` up (none without it)."""
        if self._meta is not None:
            meta = self._meta
            if log_level is not None:
                meta = {**meta, LOG_LEVEL_KEY: log_level}
            params = with_request_meta(params, meta)
        request_id = request_id if request_id is not None else self.new_request_id()
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message: JsonObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self.send(message)
            return await future
        finally:
            self._pending.pop(request_id, None)

    def forget(self, request_id: RequestId) -> None:
        """Stop waiting for a request's response (after cancelling it)."""
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.cancel()

    async def notify(self, method: str, params: JsonObject | None = None) -> None:
        """Send a notification."""
        message: JsonObject = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)

    async def close(self) -> None:
        """Close the socket politely (waiting briefly for the close handshake)."""
        with contextlib.suppress(Exception):
            await self._ws.close()
        with contextlib.suppress(BaseException):
            await self._reader

    async def wait_closed(self) -> str:
        """Wait until the connection is gone; why it went."""
        with contextlib.suppress(BaseException):
            await asyncio.shield(self._reader)
        return str(self._lost) if self._lost else "closed"

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                if isinstance(frame, str):
                    self._dispatch(frame)
        except ConnectionClosed:
            pass
        finally:
            self._lost = ConnectionLost(_close_description(self._ws))
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self._lost)

    async def _send_quietly(self, message: JsonObject) -> None:
        with contextlib.suppress(ConnectionLost):
            await self.send(message)

    def _dispatch(self, frame: str) -> None:
        try:
            message = json.loads(frame)
        except ValueError:
            return
        for item in message if isinstance(message, list) else [message]:
            if isinstance(item, dict):
                self._dispatch_one(item)

    def _dispatch_one(self, message: JsonObject) -> None:
        method = message.get("method")
        if isinstance(method, str):
            if "id" in message:
                # A request from the server: only ping is defined for a client like this one.
                reply: JsonObject = {"jsonrpc": "2.0", "id": message["id"]}
                if method == "ping":
                    reply["result"] = {}
                else:
                    reply["error"] = {"code": -32601, "message": f"Method not found: {method}"}
                task = asyncio.create_task(self._send_quietly(reply))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            else:
                params = message.get("params")
                self._on_notification(method, params if isinstance(params, dict) else {})
            return
        request_id = message.get("id")
        if not isinstance(request_id, str | int):
            return
        future = self._pending.get(request_id)
        if future is None or future.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            future.set_exception(
                RpcError(
                    int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
                )
            )
        else:
            result = message.get("result")
            future.set_result(result if isinstance(result, dict) else {})
