"""Who is calling: the authenticated user, their tenant and role, as plain data."""

from dataclasses import dataclass, field

from accounts.limits import TenantLimits, default_limits

# The Principal attributes an access change names the callers it concerns by.
IDENTIFYING_FIELDS = frozenset({"token_id", "user_id", "tenant_id"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a connection or request; every history read is scoped by it."""

    user_id: int
    username: str
    tenant_id: int
    tenant_slug: str
    is_tenant_admin: bool
    # Tool names the tenant may use; None means every registered tool but `disabled_tools`.
    enabled_tools: frozenset[str] | None
    # The token that authenticated the caller; None for a session cookie.
    token_id: int | None = None
    # The tenant's isolation limits, resolved when the caller authenticated.
    limits: TenantLimits = field(default_factory=default_limits)
    # With `enabled_tools` None: the tools switched off for the tenant (else empty).
    disabled_tools: frozenset[str] = frozenset()
