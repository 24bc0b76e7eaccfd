"""Broadcasts: a `notifications/message` to every matching connected client of every web process.

The sending side. `broadcast_send` validates and puts one message on the channel layer's
WEB_GROUP; each web process delivers it to its own matching sessions. Delivery is best effort
(a channel layer drops messages over capacity and reaches only live processes): a broadcast is
a notice to whoever is connected now, never a record.
"""

import logging
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Membership, Tenant
from mcp_server.cluster.session_messages import WEB_GROUP, Broadcast
from mcp_server.protocol.log_levels import LOG_LEVELS

logger = logging.getLogger(__name__)

DEFAULT_BROADCAST_LEVEL = "notice"
MAX_BROADCAST_LENGTH = 2000


class BroadcastError(ValueError):
    """A broadcast that cannot be sent as asked; `field` names the offending input."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class BroadcastUnavailable(RuntimeError):
    """The channel layer is missing or failed to take the message."""


@dataclass(frozen=True, slots=True)
class BroadcastReceipt:
    """Who a sent broadcast was addressed to, in words and as the filters that went out."""

    audience: str
    level: str
    tenant_id: int | None
    user_id: int | None


def channel_layer_reaches_other_processes() -> bool:
    """Whether the configured channel layer is shared between processes (not the in-memory one)."""
    layer = get_channel_layer()
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


def broadcast_audience(*, tenant: Tenant | None, user: AbstractBaseUser | None) -> str:
    """The audience of a broadcast in words, e.g. "every connected client of tenant acme"."""
    if user is not None and tenant is not None:
        return f"every connected client of user {user.get_username()} in tenant {tenant.slug}"
    if user is not None:
        return f"every connected client of user {user.get_username()}"
    if tenant is not None:
        return f"every connected client of tenant {tenant.slug}"
    return "every connected client"


def broadcast_send(
    *,
    text: str,
    level: str = DEFAULT_BROADCAST_LEVEL,
    tenant: Tenant | None = None,
    user: AbstractBaseUser | None = None,
) -> BroadcastReceipt:
    """Send `text` at `level` to the connected clients of `tenant` and/or `user` (None: all).

    Raises BroadcastError for invalid input and BroadcastUnavailable when the channel layer is
    not configured or refuses the message.
    """
    text = text.strip()
    if not text:
        raise BroadcastError("The message is empty.", field="text")
    if len(text) > MAX_BROADCAST_LENGTH:
        raise BroadcastError(
            f"The message has {len(text):,} characters; at most {MAX_BROADCAST_LENGTH:,} "
            "are allowed.",
            field="text",
        )
    if level not in LOG_LEVELS:
        raise BroadcastError(
            f"Unknown level {level!r}; expected one of {', '.join(LOG_LEVELS)}.", field="level"
        )
    if (
        tenant is not None
        and user is not None
        and not Membership.objects.filter(user_id=user.pk, tenant_id=tenant.pk).exists()
    ):
        raise BroadcastError(
            f"User {user.get_username()} is not a member of tenant {tenant.slug}.", field="user"
        )
    layer = get_channel_layer()
    if layer is None:
        raise BroadcastUnavailable("No channel layer is configured (CHANNEL_LAYERS).")

    tenant_id = tenant.pk if tenant is not None else None
    user_id = user.pk if user is not None else None
    message = Broadcast(level=level, data=text, tenant_id=tenant_id, user_id=user_id)
    try:
        async_to_sync(layer.group_send)(WEB_GROUP, message.encode())
    except Exception as exc:  # a Redis outage, typically: say so rather than a bare traceback
        logger.warning("Broadcast not sent: the channel layer failed", exc_info=True)
        raise BroadcastUnavailable(f"The channel layer did not take the broadcast: {exc}") from exc

    receipt = BroadcastReceipt(
        audience=broadcast_audience(tenant=tenant, user=user),
        level=level,
        tenant_id=tenant_id,
        user_id=user_id,
    )
    logger.info(
        "Broadcast sent to %s (level %s, %d characters)", receipt.audience, level, len(text)
    )
    return receipt
