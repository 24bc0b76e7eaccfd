"""What one tenant may consume: the process-wide defaults from settings, overridden per tenant.

Every bound that protects tenants from each other is resolved here, once, when a caller
authenticates; the runtime, the transport and the API read the result and never settings.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Self

from django.conf import settings

if TYPE_CHECKING:
    from accounts.models import Tenant


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """The bounds in force for one tenant's callers (connections and rates are per process)."""

    # Open WebSocket connections, per user and for the whole tenant.
    connections_per_user: int
    connections_per_tenant: int
    # Requests in flight (running or queued) before a new one is refused at once.
    in_flight_per_connection: int
    in_flight_per_user: int
    in_flight_per_tenant: int
    # WebSocket messages per second (token bucket: sustained rate, burst) per user and tenant.
    message_rate_per_user: float
    message_burst_per_user: int
    message_rate_per_tenant: float
    message_burst_per_tenant: int
    # REST requests per minute per user and per tenant.
    api_requests_per_minute_user: int
    api_requests_per_minute_tenant: int
    # Bytes of replies a connection may leave unread before it is closed.
    outbound_bytes_per_connection: int

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for messages between processes)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        """The limits `as_dict` gave; a missing or non-numeric value keeps the default."""
        defaults = default_limits()
        return cls(
            **{
                field.name: _number_or(values.get(field.name), getattr(defaults, field.name))
                for field in fields(cls)
            }
        )


def _number_or(value: Any, default: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return type(default)(value)


# Tenant model field -> TenantLimits attribute; a null field keeps the default.
OVERRIDE_FIELDS: dict[str, str] = {
    "limit_connections_per_user": "connections_per_user",
    "limit_connections": "connections_per_tenant",
    "limit_in_flight_per_connection": "in_flight_per_connection",
    "limit_in_flight_per_user": "in_flight_per_user",
    "limit_in_flight": "in_flight_per_tenant",
    "limit_message_rate_per_user": "message_rate_per_user",
    "limit_message_rate": "message_rate_per_tenant",
    "limit_api_requests_per_minute_user": "api_requests_per_minute_user",
    "limit_api_requests_per_minute": "api_requests_per_minute_tenant",
    "limit_outbound_bytes_per_connection": "outbound_bytes_per_connection",
}


def default_limits() -> TenantLimits:
    """The limits of a tenant with no overrides, from settings."""
    return TenantLimits(
        connections_per_user=settings.MCP_MAX_CONNECTIONS_PER_USER,
        connections_per_tenant=settings.MCP_MAX_CONNECTIONS_PER_TENANT,
        in_flight_per_connection=settings.MCP_MAX_IN_FLIGHT_PER_CONNECTION,
        in_flight_per_user=settings.MCP_MAX_IN_FLIGHT_PER_USER,
        in_flight_per_tenant=settings.MCP_MAX_IN_FLIGHT_PER_TENANT,
        message_rate_per_user=settings.MCP_MESSAGE_RATE_PER_USER,
        message_burst_per_user=settings.MCP_MESSAGE_BURST_PER_USER,
        message_rate_per_tenant=settings.MCP_MESSAGE_RATE_PER_TENANT,
        message_burst_per_tenant=settings.MCP_MESSAGE_BURST_PER_TENANT,
        api_requests_per_minute_user=settings.MCP_API_REQUESTS_PER_MINUTE_USER,
        api_requests_per_minute_tenant=settings.MCP_API_REQUESTS_PER_MINUTE_TENANT,
        outbound_bytes_per_connection=settings.MCP_MAX_OUTBOUND_BYTES_PER_CONNECTION,
    )


def limits_for(tenant: "Tenant") -> TenantLimits:
    """The defaults with this tenant's overrides (set in the admin) applied."""
    return limits_with({field: getattr(tenant, field, None) for field in OVERRIDE_FIELDS})


def limits_with(overrides: Mapping[str, Any]) -> TenantLimits:
    """The defaults with the overrides given by Tenant field name (None keeps a default)."""
    changed = {
        attribute: overrides[field]
        for field, attribute in OVERRIDE_FIELDS.items()
        if overrides.get(field) is not None
    }
    return replace(default_limits(), **changed) if changed else default_limits()
