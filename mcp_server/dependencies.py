"""The service's dependencies (the database; Redis when configured): how to probe them, and
what this process knows of a Redis outage.

`layer_outage` is the channel layer's state as the receive loops see it: down from the first
failed receive or group join, up again once the layer answers and this process has rejoined its
groups. Handshakes are refused while it is down; the readiness probe reports it.
"""

import asyncio
import logging
import threading
import time

import redis.asyncio
import redis.exceptions
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from mcp_server.cluster.database import db_call

logger = logging.getLogger(__name__)

# What Redis raises when it cannot be reached, or stops answering.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
_PROBE_ERRORS: tuple[type[Exception], ...] = (TimeoutError, OSError, *REDIS_ERRORS)
# What the database raises when it cannot be reached (not: a query that is wrong).
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

REDIS_UNAVAILABLE = "Redis (the channel layer) is unreachable; try again shortly"
DATABASE_UNAVAILABLE = "the database is unreachable; try again shortly"


class Outage:
    """One dependency's outages as this process sees them: each is logged once when it starts
    and once when it ends, however many attempts fail in between."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def is_down(self) -> bool:
        """Whether the last thing tried of this dependency failed."""
        return self._since is not None

    def down(self, error: BaseException) -> None:
        """An attempt failed: the outage starts now, unless it already had."""
        with self._lock:
            if self._since is not None:
                logger.debug("%s still unreachable: %s", self.name, _describe(error))
                return
            self._since = time.monotonic()
        logger.warning(
            "%s unreachable (%s); retrying with backoff until it is back",
            self.name,
            _describe(error),
        )

    def up(self) -> None:
        """An attempt succeeded: the outage, if any, is over."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            lasted = time.monotonic() - self._since
            self._since = None
        logger.warning("%s reachable again after %.1f s", self.name, lasted)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


layer_outage = Outage("Redis (channel layer)")


def _database_round_trip() -> None:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def database_problem() -> str | None:
    """None when the database answers a query within MCP_DEPENDENCY_TIMEOUT, else what is wrong."""
    try:
        await asyncio.wait_for(db_call(_database_round_trip)(), settings.MCP_DEPENDENCY_TIMEOUT)
    except TimeoutError:
        return f"no answer within {settings.MCP_DEPENDENCY_TIMEOUT:g} s"
    except DatabaseError as exc:
        return f"unreachable ({type(exc).__name__})"
    return None


async def redis_problem() -> str | None:
    """None when Redis answers a PING and the channel layer has recovered, else what is wrong
    (None too when no Redis is configured)."""
    if not settings.REDIS_URL:
        return None
    timeout = settings.MCP_DEPENDENCY_TIMEOUT
    client = redis.asyncio.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        await asyncio.wait_for(client.ping(), 2 * timeout)
    except _PROBE_ERRORS as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        await client.aclose()
    if layer_outage.is_down:
        return "reachable again; this process is rejoining the channel layer"
    return None
