"""Who a session's feature requests work for: the caller as it is now, its share of the
database threads, and the wait that makes this process's history readable."""

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from accounts.principal import Principal
from mcp_server.cluster.database import db_call
from mcp_server.runtime.limits import SlotKey


@dataclass(frozen=True, slots=True)
class SessionCaller:
    """The caller of one session (its principal may change with the tenant's settings)."""

    principal: Callable[[], Principal]
    slot_key: Callable[[], SlotKey]
    # Waits until history holds what this process recorded (the caller's latest runs).
    settle: Callable[[], Awaitable[None]]

    def db(self, fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
        """`fn` run on a database thread, on this caller's share of them."""
        return db_call(fn, caller=self.slot_key())


class CurrentPrincipal:
    """Who a session works for now (replaced when the tenant's settings change) and its
    connection, shared with the session's parts: they read it here rather than through the
    session, so that nothing of the session points back at it (freed by reference counting)."""

    __slots__ = ("connection_id", "principal")

    def __init__(self, principal: Principal, connection_id: str) -> None:
        self.principal = principal
        self.connection_id = connection_id

    def get(self) -> Principal:
        """The principal as it is now."""
        return self.principal

    def slot_key(self) -> SlotKey:
        """Its slots, requests in flight and database share."""
        principal = self.principal
        return SlotKey(principal.tenant_id, principal.user_id, self.connection_id)
