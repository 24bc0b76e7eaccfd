"""The caller of a Streamable HTTP request without a token, when the operator names a tenant
whose tools anyone may use (MCP_ANONYMOUS_TENANT; off by default).

Anonymous callers act as one member of that tenant, `anonymous@<tenant>`, made on first use
with no usable password (nobody can log in as it) and no token: its history and tasks are
that tenant's, shared by every anonymous caller, under the tenant's limits.
"""

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Membership, Tenant
from accounts.principal import Principal
from accounts.selectors import INACTIVE_ACCOUNT, AuthFailure, principal_from_membership

ANONYMOUS_TENANT_MISSING = AuthFailure(503, "the anonymous tenant is not configured correctly")


def anonymous_username(tenant_slug: str) -> str:
    """The user every anonymous caller of `tenant_slug` acts as."""
    return f"anonymous@{tenant_slug}"


def anonymous_principal(tenant_slug: str) -> Principal | AuthFailure:
    """The Principal of an anonymous caller of `tenant_slug` (its member made on first use)."""
    membership = (
        Membership.objects.select_related("tenant", "user")
        .filter(user__username=anonymous_username(tenant_slug), tenant__slug=tenant_slug)
        .first()
    )
    if membership is None:
        membership = _anonymous_member_create(tenant_slug)
        if membership is None:
            return ANONYMOUS_TENANT_MISSING
    if not membership.tenant.is_active or not membership.user.is_active:
        return INACTIVE_ACCOUNT
    return principal_from_membership(membership)


def _anonymous_member_create(tenant_slug: str) -> Membership | None:
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        return None
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(
            username=anonymous_username(tenant_slug)
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        membership, _ = Membership.objects.select_related("tenant", "user").get_or_create(
            user=user, defaults={"tenant": tenant}
        )
    return membership if membership.tenant_id == tenant.pk else None
