"""Tenants, users and tokens for tests, made through the account services."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Tenant
from accounts.services import IssuedToken, tenant_create, token_create, user_create


def member_create(
    username: str = "alice",
    *,
    tenant_slug: str = "acme",
    tenant_admin: bool = False,
    enabled_tools: list[str] | None = None,
) -> AbstractBaseUser:
    """A user in `tenant_slug`, creating the tenant when it does not exist yet."""
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        tenant = tenant_create(slug=tenant_slug)
    if enabled_tools is not None:
        tenant.enabled_tools = enabled_tools
        tenant.save(update_fields=["enabled_tools"])
    return user_create(username=username, tenant_slug=tenant_slug, tenant_admin=tenant_admin)


def member_token(
    username: str = "alice",
    *,
    tenant_slug: str = "acme",
    tenant_admin: bool = False,
    enabled_tools: list[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """A new member and a token of theirs."""
    user = member_create(
        username,
        tenant_slug=tenant_slug,
        tenant_admin=tenant_admin,
        enabled_tools=enabled_tools,
    )
    return token_create(user=user, name=f"{username}-token", expires_at=expires_at)
