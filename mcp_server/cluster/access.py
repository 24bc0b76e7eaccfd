"""Keeps this process's connections and work within the access their callers still have.

Two ways in, both acted on within seconds: the announcements of mcp_server/access.py (one
message per change, through RUNNERS_GROUP), and a periodic round that re-checks every local
connection's caller (access, tool set, limits) against the database in a few bounded queries
(one per ACCESS_CHECK_CHUNK distinct tokens, however many connections share them), which
catches expired tokens and announcements the at-most-once channel layer lost.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from accounts.limits import TenantLimits
from accounts.principal import IDENTIFYING_FIELDS, Principal
from accounts.selectors import access_states
from accounts.token_lookups import token_cache
from mcp_server.cluster import decoding, session_messages
from mcp_server.cluster.database import db_call
from mcp_server.cluster.rounds import every
from mcp_server.operations.lifecycle import Stop
from mcp_server.runtime.runner import OperationRunner

logger = logging.getLogger(__name__)

# A tenant's tool set (enabled, disabled) and limits, as a connection is told of them.
TenantSettings = tuple[frozenset[str] | None, frozenset[str], TenantLimits]


def close_code(status: int) -> int:
    """The WebSocket close code for an HTTP status a handshake would be refused with."""
    return 4000 + status


class GuardedConnection(Protocol):
    """What the guard needs of a connection's session."""

    @property
    def principal(self) -> Principal:
        """The caller, as authenticated (tool set kept current)."""

    @property
    def is_closed(self) -> bool:
        """Whether the connection has closed."""

    async def revoke_access(self, code: int, reason: str) -> None:
        """Stop the connection's work as revoked and close it with `code` and `reason`."""

    async def tenant_changed(
        self,
        enabled_tools: frozenset[str] | None,
        disabled_tools: frozenset[str],
        limits: TenantLimits,
    ) -> None:
        """Use the tenant's new tool set and limits; tell the client when its list changed."""


class AccessGuard:
    """Acts on access changes for one process's connections and running work."""

    def __init__(
        self,
        *,
        connections: Callable[[], Iterable[Any]],
        runner: OperationRunner,
        interval: float,
    ) -> None:
        self._connections = connections
        self._runner = runner
        self.interval = interval

    def _open(self) -> list[GuardedConnection]:
        return [c for c in self._connections() if not c.is_closed]

    async def handle(self, message: decoding.ClusterMessage) -> None:
        """Act on an access.revoked or access.tenant_changed message: forget the callers'
        cached lookups first, so no new request or handshake gets the old access."""
        if isinstance(message, session_messages.AccessRevoked):
            token_cache().forget(message.kind, message.ids)
            await self._revoked(message)
        elif isinstance(message, session_messages.TenantChanged):
            token_cache().forget("tenant_id", [message.tenant_id])
            await self._tenant_changed(message)

    async def _revoked(self, message: session_messages.AccessRevoked) -> None:
        field = message.kind
        if field not in IDENTIFYING_FIELDS:
            logger.warning("ignored an access.revoked message matching on %r", field)
            return
        wanted = set(message.ids)

        def matches(principal: Principal) -> bool:
            return getattr(principal, field) in wanted

        closing = [c for c in self._open() if matches(c.principal)]
        await self._close(closing, message.status, message.reason)
        # Work that outlives connections (tasks) and work run here for other processes.
        stopped = self._runner.cancel_where(matches, Stop.access_revoked(message.reason))
        if stopped:
            logger.info(
                "access revoked (%s): stopping %d operation(s) run here", message.reason, stopped
            )

    async def _tenant_changed(self, message: session_messages.TenantChanged) -> None:
        affected = [c for c in self._open() if c.principal.tenant_id == message.tenant_id]
        settings = (message.enabled_tools, message.disabled_tools, message.limits)
        await asyncio.gather(
            *(c.tenant_changed(*settings) for c in affected), return_exceptions=True
        )

    async def _close(self, connections: list[GuardedConnection], status: int, reason: str) -> None:
        if connections:
            logger.info("closing %d connection(s): %s", len(connections), reason)
        outcomes = await asyncio.gather(
            *(c.revoke_access(close_code(status), reason) for c in connections),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                logger.warning("could not close a revoked connection", exc_info=outcome)

    async def check(self) -> None:
        """One round: re-check every open connection's caller against the database."""
        connections = self._open()
        tokens = {c.principal.token_id for c in connections if c.principal.token_id is not None}
        users = {c.principal.user_id for c in connections if c.principal.token_id is None}
        if not tokens and not users:
            return
        states = await db_call(access_states)(token_ids=tokens, user_ids=users)
        by_failure: dict[tuple[int, str], list[GuardedConnection]] = {}
        changed: list[tuple[GuardedConnection, TenantSettings]] = []
        for connection in connections:
            principal = connection.principal
            state = states.for_principal(principal)
            failure = state.failure_for(principal)
            if failure is not None:
                by_failure.setdefault((failure.status, failure.reason), []).append(connection)
                continue
            assert state.limits is not None
            now = (state.enabled_tools, state.disabled_tools, state.limits)
            if now != (principal.enabled_tools, principal.disabled_tools, principal.limits):
                changed.append((connection, now))
        # A change nobody announced: cached lookups of these callers are as stale.
        if by_failure:
            token_cache().forget(
                "user_id", {c.principal.user_id for cs in by_failure.values() for c in cs}
            )
        if changed:
            token_cache().forget("tenant_id", {c.principal.tenant_id for c, _ in changed})
        for (status, reason), closing in by_failure.items():
            await self._close(closing, status, reason)
        if changed:
            await asyncio.gather(
                *(c.tenant_changed(*now) for c, now in changed), return_exceptions=True
            )

    async def run_checks(self) -> None:
        """Re-check every `interval` seconds until cancelled."""
        await every(self.interval, self.check, failure="access check failed")
