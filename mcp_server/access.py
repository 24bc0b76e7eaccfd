"""Access taken away reaches running work and open connections: the sending side.

When accounts announce (after commit) that a token was revoked or deleted, or a user or a tenant
deactivated, the active tasks of that access are marked cancelled in history (durable: the
process running one stops it at its next heartbeat round even if every message is lost), then
one message goes to every process through RUNNERS_GROUP: web processes close the matching
connections, every process stops the matching work it runs. A tenant's new tool set and
limits go the same way. The channel layer delivers at most once: each web process also re-checks its
connections every MCP_ACCESS_CHECK_INTERVAL seconds (mcp_server/cluster/access.py).
"""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.access_changes import (
    AccessRevocation,
    RevokedBy,
    access_revoked,
    tenant_changed,
)
from accounts.limits import TenantLimits
from accounts.selectors import (
    INACTIVE_ACCOUNT,
    INVALID_TOKEN,
    NO_TENANT,
    REVOKED_TOKEN,
    AuthFailure,
)
from mcp_server.cluster.messages import RUNNERS_GROUP
from mcp_server.cluster.session_messages import AccessRevoked, TenantChanged
from mcp_server.operations.lifecycle import Stop
from mcp_server.operations.store import tasks_cancel_revoked

logger = logging.getLogger(__name__)

# What an open connection is closed with: what its handshake would be refused with now.
REVOCATION_FAILURES: dict[RevokedBy, AuthFailure] = {
    RevokedBy.TOKEN: REVOKED_TOKEN,
    RevokedBy.TOKEN_DELETED: INVALID_TOKEN,
    RevokedBy.USER: INACTIVE_ACCOUNT,
    RevokedBy.MEMBERSHIP: NO_TENANT,
    RevokedBy.TENANT: INACTIVE_ACCOUNT,
}
# The Principal attribute (and Operation column) each kind of revocation matches.
REVOCATION_FIELDS: dict[RevokedBy, str] = {
    RevokedBy.TOKEN: "token_id",
    RevokedBy.TOKEN_DELETED: "token_id",
    RevokedBy.USER: "user_id",
    RevokedBy.MEMBERSHIP: "user_id",
    RevokedBy.TENANT: "tenant_id",
}


def revoke_access(*, revocation: AccessRevocation) -> None:
    """Stop the tasks of revoked access in history, then tell every process."""
    failure = REVOCATION_FAILURES[revocation.kind]
    field = REVOCATION_FIELDS[revocation.kind]
    cancelled = tasks_cancel_revoked(
        field=field, ids=revocation.ids, stop=Stop.access_revoked(failure.reason)
    )
    if cancelled:
        logger.info("access revoked (%s): %d task(s) cancelled", revocation.kind, len(cancelled))
    _send(
        AccessRevoked(
            kind=field, ids=list(revocation.ids), status=failure.status, reason=failure.reason
        )
    )


def change_tenant(
    *,
    tenant_id: int,
    enabled_tools: frozenset[str] | None,
    disabled_tools: frozenset[str],
    limits: TenantLimits,
) -> None:
    """Tell every process a tenant's tool set or limits changed."""
    _send(
        TenantChanged(
            tenant_id=tenant_id,
            enabled_tools=enabled_tools,
            disabled_tools=disabled_tools,
            limits=limits,
        )
    )


def _send(message: AccessRevoked | TenantChanged) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(RUNNERS_GROUP, message.encode())
    except Exception:
        # Connections catch up at their process's next access check.
        logger.warning("could not announce %s", message.TYPE, exc_info=True)


def _on_access_revoked(sender: Any, revocation: AccessRevocation, **kwargs: Any) -> None:
    revoke_access(revocation=revocation)


def _on_tenant_changed(
    sender: Any,
    tenant_id: int,
    enabled_tools: frozenset[str] | None,
    disabled_tools: frozenset[str],
    limits: TenantLimits,
    **kwargs: Any,
) -> None:
    change_tenant(
        tenant_id=tenant_id,
        enabled_tools=enabled_tools,
        disabled_tools=disabled_tools,
        limits=limits,
    )


def connect_receivers() -> None:
    """Act on the access changes accounts announce."""
    access_revoked.connect(_on_access_revoked, dispatch_uid="mcp-access-revoked")
    tenant_changed.connect(_on_tenant_changed, dispatch_uid="mcp-tenant-changed")
