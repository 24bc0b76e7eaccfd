"""Tenants, the membership of each user in one tenant, and hashed API tokens."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Tenant(models.Model):
    """An organisation whose users, tools and history are isolated from every other."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    # The tenant's tool set (accounts/tool_sets.py): a list of names in `enabled_tools` is the
    # whole set, and tools added to the server later stay off; empty (None or []) means every
    # tool but those in `disabled_tools`, and tools added later are on.
    enabled_tools = models.JSONField(
        null=True,
        blank=True,
        help_text="Only these tools (tools added to the server later stay off). "
        "Empty: every tool but the disabled ones.",
    )
    disabled_tools = models.JSONField(
        default=list,
        blank=True,
        help_text="With every tool enabled: the tools switched off (tools added later are on).",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Per-tenant overrides of the isolation limits (accounts/limits.py); empty keeps the default.
    limit_connections_per_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="Open connections per user, per process."
    )
    limit_connections = models.PositiveIntegerField(
        null=True, blank=True, help_text="Open connections of the whole tenant, per process."
    )
    limit_in_flight_per_connection = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests running or queued per connection."
    )
    limit_in_flight_per_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests running or queued per user."
    )
    limit_in_flight = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests running or queued for the whole tenant."
    )
    limit_message_rate_per_user = models.FloatField(
        null=True, blank=True, help_text="WebSocket messages per second per user (sustained)."
    )
    limit_message_rate = models.FloatField(
        null=True, blank=True, help_text="WebSocket messages per second for the whole tenant."
    )
    limit_api_requests_per_minute_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="REST requests per minute per user."
    )
    limit_api_requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="REST requests per minute for the whole tenant."
    )
    limit_outbound_bytes_per_connection = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Unread reply bytes per connection before it is closed."
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """The one tenant a user belongs to, and their role there."""

    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Tenant admin"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "role"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def is_tenant_admin(self) -> bool:
        """Whether this member administers the tenant."""
        return self.role == self.Role.ADMIN


class ApiToken(models.Model):
    """A named bearer token of one user; only its SHA-256 digest is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        """Whether the token was revoked."""
        return self.revoked_at is not None

    def is_expired(self, now: datetime | None = None) -> bool:
        """Whether the token's expiry has passed."""
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())
