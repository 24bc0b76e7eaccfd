"""Writes for tenants, users and tokens; every change to accounts goes through here."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.access_changes import RevokedBy, announce_revocation, announce_tenant_changed
from accounts.limits import OVERRIDE_FIELDS
from accounts.models import ApiToken, Membership, Tenant
from accounts.tokens import token_digest, token_display_prefix, token_generate


class AccountError(ValueError):
    """A requested account change that cannot be made (unknown tenant, duplicate user...)."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token: the stored row and the raw value, shown exactly once."""

    token: ApiToken
    raw: str


def tenant_create(*, slug: str, name: str = "") -> Tenant:
    """Create a tenant; the slug must be new and a valid slug (it names a data directory)."""
    if Tenant.objects.filter(slug=slug).exists():
        raise AccountError(f"tenant {slug!r} already exists")
    tenant = Tenant(slug=slug, name=name or slug)
    try:
        # The model's validators (SlugField: letters, digits, '-' and '_'; lengths), which
        # Model.save() alone never runs.
        tenant.full_clean()
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
        )
        raise AccountError(f"invalid tenant {slug!r}: {problems}") from None
    tenant.save()
    return tenant


@transaction.atomic
def user_create(
    *,
    username: str,
    tenant_slug: str,
    tenant_admin: bool = False,
    email: str = "",
    password: str | None = None,
) -> AbstractBaseUser:
    """Create a user as a member (or admin) of an existing tenant."""
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        raise AccountError(f"tenant {tenant_slug!r} does not exist")
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise AccountError(f"user {username!r} already exists")
    user = user_model.objects.create_user(username=username, email=email, password=password)
    role = Membership.Role.ADMIN if tenant_admin else Membership.Role.MEMBER
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


def token_create(
    *, user: Any, name: str = "default", expires_at: datetime | None = None
) -> IssuedToken:
    """Issue a new token for `user`; the caller shows `raw` once and never stores it."""
    raw = token_generate()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=token_display_prefix(raw),
        digest=token_digest(raw),
        expires_at=expires_at,
    )
    return IssuedToken(token=token, raw=raw)


def token_create_for_username(
    *, username: str, name: str = "default", expires_in_days: int | None = None
) -> IssuedToken:
    """Issue a token for the user called `username`, optionally expiring in some days."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise AccountError(f"user {username!r} does not exist")
    if expires_in_days is not None and expires_in_days <= 0:
        raise AccountError("--expires-in-days must be a positive number of days")
    try:
        expires_at = (
            timezone.now() + timedelta(days=expires_in_days)
            if expires_in_days is not None
            else None
        )
    except OverflowError:
        raise AccountError("--expires-in-days is too large: the date would be past 9999") from None
    return token_create(user=user, name=name, expires_at=expires_at)


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token from now on; revoking twice keeps the first time.

    Once committed, its open connections close and the tasks it started stop.
    """
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        announce_revocation(RevokedBy.TOKEN, [token.pk])
    return token


def tenant_update(*, tenant: Tenant, changed: Collection[str]) -> Tenant:
    """Save an edited tenant; once committed, a deactivation closes its connections and stops
    its tasks, and a new tool set or new limits reach its open connections. `changed`: the
    edited fields."""
    tenant.save()
    if "is_active" in changed and not tenant.is_active:
        announce_revocation(RevokedBy.TENANT, [tenant.pk])
    if {"enabled_tools", "disabled_tools", *OVERRIDE_FIELDS} & set(changed):
        announce_tenant_changed(tenant=tenant)
    return tenant


def token_touch(*, token_id: int, last_used_at: datetime | None, interval_seconds: int) -> None:
    """Record a token's use, at most once per interval, so use costs no write per message."""
    now = timezone.now()
    if last_used_at is not None and now - last_used_at < timedelta(seconds=interval_seconds):
        return
    ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
