"""Serializers of POST /api/broadcasts/: the request, and the receipt it answers with."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from rest_framework import serializers

from accounts.models import Tenant
from mcp_server.broadcasts import DEFAULT_BROADCAST_LEVEL, MAX_BROADCAST_LENGTH
from mcp_server.protocol.log_levels import LOG_LEVELS


class BroadcastCreateSerializer(serializers.Serializer[Any]):
    """A broadcast to send: the text, its level, and optionally a tenant and/or a user."""

    message = serializers.CharField(
        max_length=MAX_BROADCAST_LENGTH,
        help_text="The text clients receive as the `data` of a notifications/message.",
    )
    level = serializers.ChoiceField(
        choices=list(LOG_LEVELS),
        default=DEFAULT_BROADCAST_LEVEL,
        help_text="The MCP logging level of the message.",
    )
    tenant = serializers.CharField(
        max_length=Tenant._meta.get_field("slug").max_length,
        required=False,
        allow_null=True,
        help_text="Only the clients of this tenant (its slug); omitted or null: every tenant.",
    )
    user = serializers.CharField(
        max_length=get_user_model()._meta.get_field("username").max_length,
        required=False,
        allow_null=True,
        help_text="Only the clients of this user (a username); omitted or null: every user.",
    )

    def validate_tenant(self, slug: str | None) -> Tenant | None:
        """The tenant with this slug; an unknown slug is a field error."""
        if slug is None:
            return None
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise serializers.ValidationError(f"No tenant with slug {slug!r}.")
        return tenant

    def validate_user(self, username: str | None) -> AbstractBaseUser | None:
        """The user with this username; an unknown username is a field error."""
        if username is None:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise serializers.ValidationError(f"No user named {username!r}.")
        return user


class BroadcastReceiptSerializer(serializers.Serializer[Any]):
    """Who a broadcast went to, in words, and at which level."""

    audience = serializers.CharField(help_text='E.g. "every connected client of tenant acme".')
    level = serializers.ChoiceField(choices=list(LOG_LEVELS))
