"""Reads for authentication: resolve a raw token or a session user into a Principal."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from accounts.limits import limits_for
from accounts.models import ApiToken, Membership
from accounts.principal import Principal
from accounts.services import token_touch
from accounts.tokens import TOKEN_PREFIX, token_digest


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why authentication failed, phrased for the client; `status` is the HTTP status to send."""

    status: int
    reason: str
    # Seconds after which trying again may succeed (sent as Retry-After with a 429).
    retry_after: int | None = None


INVALID_TOKEN = AuthFailure(401, "invalid token")
EXPIRED_TOKEN = AuthFailure(401, "token expired")
REVOKED_TOKEN = AuthFailure(401, "token revoked")
INACTIVE_ACCOUNT = AuthFailure(403, "account or tenant is inactive")
NO_TENANT = AuthFailure(403, "user belongs to no tenant")


def principal_from_membership(membership: Membership, token_id: int | None = None) -> Principal:
    """Build the Principal of a member (membership with user and tenant loaded)."""
    tenant = membership.tenant
    enabled = frozenset(tenant.enabled_tools) if tenant.enabled_tools else None
    return Principal(
        user_id=membership.user_id,
        username=membership.user.get_username(),
        tenant_id=tenant.pk,
        tenant_slug=tenant.slug,
        is_tenant_admin=membership.is_tenant_admin,
        enabled_tools=enabled,
        token_id=token_id,
        limits=limits_for(tenant),
    )


def principal_for_token(raw: str) -> Principal | AuthFailure:
    """Resolve a raw bearer token in one query; record its use at a bounded rate."""
    outcome = user_and_principal_for_token(raw)
    return outcome if isinstance(outcome, AuthFailure) else outcome[1]


def user_and_principal_for_token(raw: str) -> tuple[Any, Principal] | AuthFailure:
    """Like principal_for_token, also returning the token's user (loaded by the same query)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return INVALID_TOKEN
    token = (
        ApiToken.objects.select_related("user__membership__tenant")
        .filter(digest=token_digest(raw))
        .first()
    )
    if token is None:
        return INVALID_TOKEN
    if token.revoked_at is not None:
        return REVOKED_TOKEN
    now = timezone.now()
    if token.is_expired(now):
        return EXPIRED_TOKEN
    try:
        membership: Membership | None = token.user.membership
    except Membership.DoesNotExist:
        membership = None
    outcome = _principal_for_member(token.user, membership, token_id=token.pk)
    if isinstance(outcome, AuthFailure):
        return outcome
    token_touch(
        token_id=token.pk,
        last_used_at=token.last_used_at,
        interval_seconds=settings.MCP_TOKEN_TOUCH_INTERVAL,
    )
    return token.user, outcome


def principal_for_user(user: AbstractBaseUser | AnonymousUser) -> Principal | AuthFailure:
    """Resolve a session-authenticated user into a Principal."""
    if not user.is_authenticated:
        return AuthFailure(401, "not logged in")
    membership = Membership.objects.select_related("tenant", "user").filter(user_id=user.pk).first()
    return _principal_for_member(user, membership)


def _principal_for_member(
    user: AbstractBaseUser | AnonymousUser,
    membership: Membership | None,
    token_id: int | None = None,
) -> Principal | AuthFailure:
    if not user.is_active:
        return INACTIVE_ACCOUNT
    if membership is None:
        return NO_TENANT
    if not membership.tenant.is_active:
        return INACTIVE_ACCOUNT
    return principal_from_membership(membership, token_id=token_id)
