"""Requests in flight (running or queued) per connection, user and tenant of this process.

Past a bound a request is refused at once, never given a queue slot: a client that sends
thousands of calls gets thousands of errors, not thousands of waiters. The bounds are the
caller's `TenantLimits` (resolved at authentication); the counts are this process's.
"""

from typing import Any

from accounts.limits import TenantLimits
from mcp_server.runtime.limits import SlotKey


class InFlightLimitReached(Exception):
    """A request would exceed a bound on requests in flight; `data` names the bound."""

    def __init__(self, scope: str, limit_name: str, limit: int) -> None:
        super().__init__(
            f"Too many requests in flight for this {scope} (at most {limit}); "
            "wait for some to finish, or cancel them, before sending more"
        )
        self.data: dict[str, Any] = {"limit": limit_name, "scope": scope, "maximum": limit}


class InFlightRequests:
    """Counts of admitted requests by connection, user and tenant, checked against bounds."""

    __slots__ = ("_by_connection", "_by_tenant", "_by_user")

    def __init__(self) -> None:
        self._by_connection: dict[Any, int] = {}
        self._by_user: dict[Any, int] = {}
        self._by_tenant: dict[Any, int] = {}

    def admit(self, key: SlotKey, limits: TenantLimits) -> None:
        """Count one more request for `key`, or raise InFlightLimitReached (counting nothing)."""
        if self._by_connection.get(key.connection, 0) >= limits.in_flight_per_connection:
            raise InFlightLimitReached(
                "connection", "in_flight_per_connection", limits.in_flight_per_connection
            )
        if self._by_user.get(key.user, 0) >= limits.in_flight_per_user:
            raise InFlightLimitReached("user", "in_flight_per_user", limits.in_flight_per_user)
        if self._by_tenant.get(key.tenant, 0) >= limits.in_flight_per_tenant:
            raise InFlightLimitReached(
                "tenant", "in_flight_per_tenant", limits.in_flight_per_tenant
            )
        for counts, name in (
            (self._by_connection, key.connection),
            (self._by_user, key.user),
            (self._by_tenant, key.tenant),
        ):
            counts[name] = counts.get(name, 0) + 1

    def release(self, key: SlotKey) -> None:
        """A request admitted for `key` has ended."""
        for counts, name in (
            (self._by_connection, key.connection),
            (self._by_user, key.user),
            (self._by_tenant, key.tenant),
        ):
            left = counts.get(name, 0) - 1
            if left > 0:
                counts[name] = left
            else:
                counts.pop(name, None)

    def count(self, *, connection: Any = None, user: Any = None, tenant: Any = None) -> int:
        """Requests in flight for one connection, user or tenant."""
        if connection is not None:
            return self._by_connection.get(connection, 0)
        if user is not None:
            return self._by_user.get(user, 0)
        return self._by_tenant.get(tenant, 0)
