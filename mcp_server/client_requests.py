"""The session's own requests to its client (elicitation, sampling) and their responses.

Transport-neutral: a request goes out through the session's `send`, and its response comes
back through `resolve`, whichever process or connection the transport received it on (on
Streamable HTTP a response may reach another web process, which forwards it to the session
that waits). Ids are made here and unguessable, so no one else can answer in the client's place.
Each request waits at most `timeout` seconds; at most `max_outstanding` wait at once per
session; closing the session, or cancelling the waiting call, ends the wait (a cancelled
request is announced to the client with `notifications/cancelled`).
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp_server.protocol import methods
from mcp_server.protocol.errors import RequestId
from mcp_server.protocol.input_required import InputRequest, declares
from mcp_server.protocol.messages import Response, notification_message, request_message

logger = logging.getLogger(__name__)

Send = Callable[[Any], Awaitable[None]]
# Prefix of the ids of our requests: it tells them from the client's in the logs.
_ID_PREFIX = "srv-"


class ClientRequestError(Exception):
    """A request to the client could not be made or got no usable answer; the message says
    why, in words a tool can pass on to the model."""


class ClientCapabilityMissing(ClientRequestError):
    """The client did not declare the capability the request needs."""


class ClientRequestFailed(ClientRequestError):
    """The client answered with a JSON-RPC error."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.code = error.get("code")
        self.error_message = str(error.get("message", ""))
        super().__init__(f"The client refused {method}: {self.error_message} (code {self.code})")


class ClientRequests:
    """The requests one session has sent to its client and not yet had answered."""

    __slots__ = ("_closed", "_pending", "_send", "capabilities", "max_outstanding", "timeout")

    def __init__(self, *, send: Send, timeout: float, max_outstanding: int) -> None:
        self._send = send
        self.timeout = timeout
        self.max_outstanding = max_outstanding
        # What the client declared in initialize (set by the session when it is initialized).
        self.capabilities: dict[str, Any] = {}
        self._pending: dict[str, asyncio.Future[Response]] = {}
        self._closed = False

    @property
    def idle(self) -> bool:
        """Whether no request of ours waits for the client, and the session did not close."""
        return not self._pending and not self._closed

    def __len__(self) -> int:
        return len(self._pending)

    def supports(self, capability: str, mode: str | None = None) -> bool:
        """Whether the client declared `capability` (and, when given, its sub-mode `mode`)."""
        return declares(self.capabilities, capability, mode)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send `method` to the client and return its result; ClientRequestError when the
        session is closed, too many requests wait, the client errs or does not answer in time.
        Cancelling the caller cancels the request (the client is told)."""
        if self._closed:
            raise ClientRequestError("The connection is closing: the client cannot be asked")
        if len(self._pending) >= self.max_outstanding:
            raise ClientRequestError(
                f"Too many requests to the client at once (at most {self.max_outstanding} "
                "per connection)"
            )
        request_id = _ID_PREFIX + secrets.token_urlsafe(16)
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            await self._send(request_message(request_id, method, params))
            async with asyncio.timeout(self.timeout):
                response = await answer
        except TimeoutError:
            await self._announce_cancel(request_id, "timed out")
            raise ClientRequestError(
                f"The client did not answer {method} within {self.timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            if not self._closed:
                await asyncio.shield(self._announce_cancel(request_id, "the call was cancelled"))
            raise
        finally:
            self._pending.pop(request_id, None)
        if response.error is not None:
            raise ClientRequestFailed(method, response.error)
        if not isinstance(response.result, dict):
            raise ClientRequestError(f"The client's answer to {method} is not an object")
        return response.result

    async def ask(self, requests: Mapping[str, InputRequest]) -> dict[str, dict[str, Any]]:
        """Send the keyed `requests` one after another; the client's results by key."""
        return {key: await self.request(r.method, r.params) for key, r in requests.items()}

    def resolve(self, response: Response) -> bool:
        """Hand a response from the client to the request waiting for it; False when no
        request of this session waits under that id (unknown, timed out, or answered)."""
        if not isinstance(response.id, str):
            return False
        answer = self._pending.get(response.id)
        if answer is None or answer.done():
            return False
        answer.set_result(response)
        return True

    def close(self) -> None:
        """The session closed: every waiting request ends with ClientRequestError."""
        self._closed = True
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(
                    ClientRequestError("The connection closed before the client answered")
                )

    async def _announce_cancel(self, request_id: RequestId, reason: str) -> None:
        params = {"requestId": request_id, "reason": reason}
        try:
            await self._send(notification_message(methods.NOTIFICATION_CANCELLED, params))
        except Exception:
            logger.debug("could not tell the client a request was cancelled", exc_info=True)
