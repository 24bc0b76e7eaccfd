"""Reads for authentication: resolve a raw token or a session user into a Principal."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from accounts.limits import OVERRIDE_FIELDS, TenantLimits, limits_for, limits_with
from accounts.models import ApiToken, Membership
from accounts.principal import Principal
from accounts.services import token_touch
from accounts.tokens import TOKEN_PREFIX, token_digest
from accounts.tool_sets import tool_set


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
TENANT_CHANGED = AuthFailure(403, "user now belongs to another tenant")
# Ids per query when open connections are re-checked (well under every backend's limit).
ACCESS_CHECK_CHUNK = 1000


def principal_from_membership(membership: Membership, token_id: int | None = None) -> Principal:
    """Build the Principal of a member (membership with user and tenant loaded)."""
    tenant = membership.tenant
    enabled, disabled = tool_set(tenant.enabled_tools, tenant.disabled_tools)
    return Principal(
        user_id=membership.user_id,
        username=membership.user.get_username(),
        tenant_id=tenant.pk,
        tenant_slug=tenant.slug,
        is_tenant_admin=membership.is_tenant_admin,
        enabled_tools=enabled,
        token_id=token_id,
        limits=limits_for(tenant),
        disabled_tools=disabled,
    )


def principal_for_token(raw: str) -> Principal | AuthFailure:
    """Resolve a raw bearer token in one query; record its use at a bounded rate."""
    outcome = _token_and_principal(raw)
    return outcome if isinstance(outcome, AuthFailure) else outcome[1]


def user_and_principal_for_token(raw: str) -> tuple[Any, Principal] | AuthFailure:
    """Like principal_for_token, also returning the token's user (loaded by the same query)."""
    outcome = _token_and_principal(raw)
    return outcome if isinstance(outcome, AuthFailure) else (outcome[0].user, outcome[1])


def principal_and_expiry_for_token(raw: str) -> tuple[Principal, datetime | None] | AuthFailure:
    """Like principal_for_token, also returning when the token expires (None: never)."""
    outcome = _token_and_principal(raw)
    return outcome if isinstance(outcome, AuthFailure) else (outcome[1], outcome[0].expires_at)


def _token_and_principal(raw: str) -> tuple[ApiToken, Principal] | AuthFailure:
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
    return token, outcome


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


@dataclass(frozen=True, slots=True)
class AccessState:
    """What an authenticated caller may do now: `failure` None means still allowed."""

    failure: AuthFailure | None
    tenant_id: int | None = None
    enabled_tools: frozenset[str] | None = None
    disabled_tools: frozenset[str] = frozenset()
    # The tenant's limits now (None with a failure).
    limits: TenantLimits | None = None

    def failure_for(self, principal: Principal) -> AuthFailure | None:
        """Why `principal` lost access (a failure, or a move to another tenant), if it did."""
        if self.failure is None and self.tenant_id != principal.tenant_id:
            return TENANT_CHANGED
        return self.failure


@dataclass(frozen=True, slots=True)
class AccessStates:
    """The current access of many callers, by token id and, for cookie sessions, by user id."""

    by_token: dict[int, AccessState]
    by_user: dict[int, AccessState]

    def for_principal(self, principal: Principal) -> AccessState:
        """The state of one caller; one gone from the database has lost access."""
        if principal.token_id is not None:
            return self.by_token.get(principal.token_id, _GONE_TOKEN)
        return self.by_user.get(principal.user_id, _GONE_USER)


_GONE_TOKEN = AccessState(INVALID_TOKEN)
_GONE_USER = AccessState(INACTIVE_ACCOUNT)


# What a re-check reads of a caller's tenant (through the membership), in this order.
_TENANT_COLUMNS = (
    "tenant_id",
    "tenant__is_active",
    "tenant__enabled_tools",
    "tenant__disabled_tools",
    *(f"tenant__{field}" for field in OVERRIDE_FIELDS),
)


def access_states(*, token_ids: Collection[int], user_ids: Collection[int]) -> AccessStates:
    """Re-check callers against the database: one query per ACCESS_CHECK_CHUNK ids, whatever
    the number of connections (tokens by token id; session users by user id)."""
    now = timezone.now()
    by_token: dict[int, AccessState] = {}
    for chunk in _chunks(token_ids):
        tokens = ApiToken.objects.filter(pk__in=chunk).values_list(
            "pk",
            "revoked_at",
            "expires_at",
            "user__is_active",
            *(f"user__membership__{column}" for column in _TENANT_COLUMNS),
        )
        for pk, revoked_at, expires_at, active, *tenant in tokens:
            by_token[pk] = _token_state(revoked_at, expires_at, now) or _member_state(
                active, tenant
            )
    by_user: dict[int, AccessState] = {}
    for chunk in _chunks(user_ids):
        users = (
            get_user_model()
            .objects.filter(pk__in=chunk)
            .values_list(
                "pk", "is_active", *(f"membership__{column}" for column in _TENANT_COLUMNS)
            )
        )
        for pk, active, *tenant in users:
            by_user[pk] = _member_state(active, tenant)
    return AccessStates(by_token=by_token, by_user=by_user)


def _chunks(ids: Collection[int]) -> list[list[int]]:
    ordered = sorted(ids)
    return [
        ordered[start : start + ACCESS_CHECK_CHUNK]
        for start in range(0, len(ordered), ACCESS_CHECK_CHUNK)
    ]


def _token_state(
    revoked_at: datetime | None, expires_at: datetime | None, now: datetime
) -> AccessState | None:
    if revoked_at is not None:
        return AccessState(REVOKED_TOKEN)
    if expires_at is not None and expires_at <= now:
        return AccessState(EXPIRED_TOKEN)
    return None


def _member_state(user_active: bool, tenant: list[Any]) -> AccessState:
    # `tenant`: the values of _TENANT_COLUMNS. The same rules, in the same order, as a
    # handshake (_principal_for_member).
    tenant_id, tenant_active, enabled_tools, disabled_tools, *overrides = tenant
    if not user_active:
        return AccessState(INACTIVE_ACCOUNT)
    if tenant_id is None:
        return AccessState(NO_TENANT)
    if not tenant_active:
        return AccessState(INACTIVE_ACCOUNT)
    enabled, disabled = tool_set(enabled_tools, disabled_tools)
    limits = limits_with(dict(zip(OVERRIDE_FIELDS, overrides, strict=True)))
    return AccessState(None, tenant_id, enabled, disabled, limits)
