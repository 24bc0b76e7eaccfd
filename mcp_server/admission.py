"""What one tenant may hold of a web process: open connections and a message rate.

`ConnectionAdmissionMiddleware` sits between authentication and the router. It counts each
user's and tenant's open WebSockets in this process and refuses a handshake over
`principal.limits.connections_per_user` / `connections_per_tenant` with HTTP 429 (or close
4429) and a reason; the count is released when the application returns, whatever ended the
connection. An admitted connection gets a `MessageAllowance` in its scope: the token buckets,
shared by every connection of its user and of its tenant in this process, that each incoming
message draws from; a change of the tenant's limits retunes them in place (McpSession.
tenant_changed). Both are per web process: N processes admit up to N times the limits.
"""

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from accounts.principal import Principal
from accounts.selectors import AuthFailure
from accounts.token_bucket import BucketsByKey, TokenBucket, take_from_all
from accounts.ws_auth import refuse_websocket
from mcp_server import metrics

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
ASGIApp = Any

# Names of the limits as a client sees them in a refusal, in bucket order.
_BUCKET_NAMES = ("messages per user", "messages per tenant")
# Allowances kept for the callers of requests that come on their own (HTTP), by principal.
KEPT_ALLOWANCES = 1024


@dataclass(frozen=True, slots=True)
class RateRefusal:
    """A message over its rate: which limit, and when a retry may succeed."""

    limit: str
    retry_after_ms: int


class MessageAllowance:
    """One connection's view of its user's and tenant's message buckets."""

    __slots__ = ("_admission", "_buckets", "dropped_notifications", "refused_requests")

    def __init__(self, admission: "ConnectionAdmission", principal: Principal) -> None:
        self._admission = admission
        self._buckets = admission.buckets_of(principal)
        self.refused_requests = 0
        self.dropped_notifications = 0

    def retune(self, principal: Principal) -> None:
        """The tenant's limits changed: the shared buckets take the new rates and bursts in
        place (keeping what they hold, up to the new burst)."""
        self._buckets = self._admission.buckets_of(principal)

    def take(self, cost: int = 1) -> RateRefusal | None:
        """Spend `cost` messages, or say which limit refuses them (nothing is spent then)."""
        if not self._buckets:
            return None
        wait, lacking = take_from_all(self._buckets, cost, time.monotonic())
        if lacking < 0:
            return None
        return RateRefusal(_BUCKET_NAMES[lacking], max(1, int(wait * 1000 + 0.999)))

    def count_refused(self, requests: int, notifications: int) -> None:
        """Record what a refusal cost the client (logged when the connection closes)."""
        self.refused_requests += requests
        self.dropped_notifications += notifications


class ConnectionAdmission:
    """This process's open connections per user and tenant, and their message buckets."""

    def __init__(self) -> None:
        self.by_user: Counter[int] = Counter()
        self.by_tenant: Counter[int] = Counter()
        self._user_buckets: BucketsByKey[int] = BucketsByKey()
        self._tenant_buckets: BucketsByKey[int] = BucketsByKey()
        # Counts the sweeps that forgot a bucket: an allowance kept from before one may hold
        # a bucket no longer shared (its caller's next allowance would get a new one).
        self._sweeps_that_forgot = 0
        self._kept: dict[int, tuple[Principal, MessageAllowance, int]] = {}

    def admit(self, principal: Principal) -> MessageAllowance | AuthFailure:
        """Count a new connection of `principal`, or the refusal when it is over a cap."""
        limits = principal.limits
        user_cap, tenant_cap = limits.connections_per_user, limits.connections_per_tenant
        if user_cap > 0 and self.by_user[principal.user_id] >= user_cap:
            return AuthFailure(
                429, f"too many connections for this user on this server (limit {user_cap})"
            )
        if tenant_cap > 0 and self.by_tenant[principal.tenant_id] >= tenant_cap:
            return AuthFailure(
                429, f"too many connections for this tenant on this server (limit {tenant_cap})"
            )
        self.by_user[principal.user_id] += 1
        self.by_tenant[principal.tenant_id] += 1
        return MessageAllowance(self, principal)

    def release(self, principal: Principal) -> None:
        """The connection admitted for `principal` has ended."""
        held = ((self.by_user, principal.user_id), (self.by_tenant, principal.tenant_id))
        for counter, key in held:
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def allowance_for(self, principal: Principal) -> MessageAllowance:
        """An allowance of `principal`'s buckets for a message that comes on its own (an HTTP
        request): the one made for the same principal before, while none of its buckets has
        been forgotten since, else a new one (building one per request showed in profiles).
        Its buckets are the shared ones either way: the rates hold as they do per message."""
        key = id(principal)
        kept = self._kept.get(key)
        if kept is not None and kept[0] is principal and kept[2] == self._sweeps_that_forgot:
            return kept[1]
        allowance = MessageAllowance(self, principal)
        if kept is None and len(self._kept) >= KEPT_ALLOWANCES:
            del self._kept[next(iter(self._kept))]  # the oldest made
        # Read after the allowance got its buckets (its own sweep may have forgotten some).
        self._kept[key] = (principal, allowance, self._sweeps_that_forgot)
        return allowance

    def buckets_of(self, principal: Principal) -> tuple[TokenBucket, ...]:
        """The user's and tenant's buckets (those with a rate), set to `principal.limits`."""
        limits = principal.limits
        now = time.monotonic()
        # Buckets of users and tenants without connections are forgotten once full again.
        held = len(self._user_buckets) + len(self._tenant_buckets)
        self._user_buckets.sweep(now, keep=self.by_user)
        self._tenant_buckets.sweep(now, keep=self.by_tenant)
        if len(self._user_buckets) + len(self._tenant_buckets) < held:
            self._sweeps_that_forgot += 1
        buckets = []
        if limits.message_rate_per_user > 0:
            buckets.append(
                self._user_buckets.get(
                    principal.user_id,
                    limits.message_rate_per_user,
                    limits.message_burst_per_user,
                    now,
                )
            )
        if limits.message_rate_per_tenant > 0:
            buckets.append(
                self._tenant_buckets.get(
                    principal.tenant_id,
                    limits.message_rate_per_tenant,
                    limits.message_burst_per_tenant,
                    now,
                )
            )
        return tuple(buckets)


class ConnectionAdmissionMiddleware:
    """Caps open WebSockets per user and tenant; hands each a `message_allowance`."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.admission = ConnectionAdmission()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Admit an authenticated WebSocket, run it, and release it however it ends."""
        principal = scope.get("principal")
        if scope["type"] != "websocket" or not isinstance(principal, Principal):
            await self.inner(scope, receive, send)
            return
        outcome = self.admission.admit(principal)
        if isinstance(outcome, AuthFailure):
            logger.info("refused a connection of user %s: %s", principal.user_id, outcome.reason)
            metrics.refused("connections", principal)
            await refuse_websocket(outcome, scope, receive, send)
            return
        metrics.connection_opened("websocket", principal)
        try:
            scope["message_allowance"] = outcome  # in place: see WebSocketAuthMiddleware
            await self.inner(scope, receive, send)
        finally:
            self.admission.release(principal)
            metrics.connection_closed("websocket", principal)
            if outcome.refused_requests or outcome.dropped_notifications:
                logger.info(
                    "connection of user %s closed after %d requests refused and %d "
                    "notifications dropped over the message rate",
                    principal.user_id,
                    outcome.refused_requests,
                    outcome.dropped_notifications,
                )
