"""Access taken away or changed, announced once the change is committed.

accounts knows nothing of connections or running work: it sends these signals after the
transaction commits, and the MCP service (mcp_server/access.py) closes the connections, stops
the work and updates the tool lists and limits. Receivers are called robustly: a failing one
is logged and never undoes or fails the change itself (every web process also re-checks its
connections).
"""

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal

from accounts.limits import limits_for
from accounts.models import ApiToken, Membership, Tenant
from accounts.tool_sets import tool_set

logger = logging.getLogger(__name__)


class RevokedBy(enum.StrEnum):
    """What was taken away: one token, or everything of a user or a tenant."""

    TOKEN = "token"
    TOKEN_DELETED = "token_deleted"
    USER = "user"
    MEMBERSHIP = "membership"
    TENANT = "tenant"


@dataclass(frozen=True, slots=True)
class AccessRevocation:
    """Access that ended: tokens revoked or deleted, users deactivated or removed from their
    tenant, tenants deactivated (by id: of tokens, users, users, tenants)."""

    kind: RevokedBy
    ids: tuple[int, ...]


# Sent with `revocation=AccessRevocation` after the change commits.
access_revoked = Signal()
# Sent with `tenant_id`, `enabled_tools` (a frozenset, or None for every tool),
# `disabled_tools` (a frozenset; with None, the tools off) and `limits` (TenantLimits) after
# commit: the tenant's tool set (accounts/tool_sets.py) or limits changed.
tenant_changed = Signal()


def announce_revocation(kind: RevokedBy, ids: Iterable[int]) -> None:
    """Send `access_revoked` once the current transaction commits (at once outside one)."""
    revocation = AccessRevocation(kind=kind, ids=tuple(sorted(set(ids))))
    if revocation.ids:
        transaction.on_commit(
            lambda: _send_robust(access_revoked, revocation=revocation), robust=True
        )


def announce_tenant_changed(*, tenant: Tenant) -> None:
    """Send `tenant_changed` with the tenant's tool set and limits once the current
    transaction commits."""
    enabled, disabled = tool_set(tenant.enabled_tools, tenant.disabled_tools)
    limits = limits_for(tenant)
    transaction.on_commit(
        lambda: _send_robust(
            tenant_changed,
            tenant_id=tenant.pk,
            enabled_tools=enabled,
            disabled_tools=disabled,
            limits=limits,
        ),
        robust=True,
    )


def _send_robust(signal: Signal, **kwargs: Any) -> None:
    for receiver, outcome in signal.send_robust(sender=AccessRevocation, **kwargs):
        if isinstance(outcome, Exception):
            logger.warning("access change receiver %r failed: %r", receiver, outcome)


def _user_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    # The stock user admin saves the whole user: any save of an inactive user announces (the
    # receivers are idempotent, and such saves are rare).
    if instance.is_active or (update_fields is not None and "is_active" not in update_fields):
        return
    announce_revocation(RevokedBy.USER, [instance.pk])


def _token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    announce_revocation(RevokedBy.TOKEN_DELETED, [instance.pk])


def _membership_deleted(sender: Any, instance: Membership, **kwargs: Any) -> None:
    announce_revocation(RevokedBy.MEMBERSHIP, [instance.user_id])


def connect_receivers() -> None:
    """Announce deactivated users, removed memberships and deleted tokens, whatever code path
    saved them."""
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="access-user-saved")
    post_delete.connect(_token_deleted, sender=ApiToken, dispatch_uid="access-token-deleted")
    post_delete.connect(
        _membership_deleted, sender=Membership, dispatch_uid="access-membership-deleted"
    )
