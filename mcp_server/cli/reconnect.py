"""Reconnecting after a dropped connection: exponential backoff with jitter, bounded attempts."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from mcp_server.client.session import AuthenticationRefused, ConnectError, McpConnection

Opener = Callable[[], Awaitable[McpConnection]]
Sleep = Callable[[float], Awaitable[None]]


class ReconnectFailed(Exception):
    """Every reconnection attempt failed."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays before reconnection attempts: initial * multiplier^(n-1), capped, with jitter."""

    initial: float = 0.5
    maximum: float = 10.0
    multiplier: float = 2.0
    attempts: int = 6

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before attempt `attempt` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** max(attempt - 1, 0))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class ReconnectListener(Protocol):
    """Who hears about reconnection attempts (the renderer tells the user)."""

    def reconnecting(self, *, attempt: int, attempts: int, delay: float, reason: str) -> None:
        """Attempt `attempt` of `attempts` starts in `delay` seconds."""

    def reconnected(self, *, attempt: int) -> None:
        """Attempt `attempt` succeeded."""


class Reconnector:
    """Opens the connection, and opens a new one after a drop, telling a listener as it goes."""

    def __init__(
        self,
        opener: Opener,
        backoff: Backoff,
        listener: ReconnectListener,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._opener = opener
        self.backoff = backoff
        self._listener = listener
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def connect(self) -> McpConnection:
        """The first connection: one attempt, so a wrong URL or token fails at once."""
        return await self._opener()

    async def reconnect(self, reason: str) -> McpConnection:
        """A new connection after a drop; ReconnectFailed after the last attempt fails.

        AuthenticationRefused is not retried: a revoked token stays revoked.
        """
        last = reason
        for attempt in range(1, self.backoff.attempts + 1):
            delay = self.backoff.delay(attempt, self._rng)
            self._listener.reconnecting(
                attempt=attempt, attempts=self.backoff.attempts, delay=delay, reason=last
            )
            await self._sleep(delay)
            try:
                connection = await self._opener()
            except AuthenticationRefused:
                raise
            except ConnectError as exc:
                last = str(exc)
                continue
            self._listener.reconnected(attempt=attempt)
            return connection
        raise ReconnectFailed(
            f"could not reconnect after {self.backoff.attempts} attempts (last error: {last})"
        )
