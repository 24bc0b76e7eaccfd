"""`manage.py broadcast MESSAGE [--tenant SLUG] [--user USERNAME] [--level LEVEL]`."""

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from mcp_server.broadcasts import (
    DEFAULT_BROADCAST_LEVEL,
    BroadcastError,
    BroadcastUnavailable,
    broadcast_send,
    channel_layer_reaches_other_processes,
)
from mcp_server.protocol.log_levels import LOG_LEVELS


class Command(BaseCommand):
    """Send a `notifications/message` to every matching client connected to any web process."""

    help = (
        "Send a message (MCP notifications/message) to every connected client, or only to "
        "those of a tenant and/or a user. Needs REDIS_URL set to the servers' Redis."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare MESSAGE, --tenant, --user and --level."""
        parser.add_argument("message", help="The text clients receive.")
        parser.add_argument("--tenant", help="Only the clients of this tenant (its slug).")
        parser.add_argument("--user", help="Only the clients of this user (a username).")
        parser.add_argument(
            "--level",
            choices=LOG_LEVELS,
            default=DEFAULT_BROADCAST_LEVEL,
            help=f"The message's logging level (default {DEFAULT_BROADCAST_LEVEL}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Send the broadcast and say to whom, or fail with a clear message."""
        if not channel_layer_reaches_other_processes():
            raise CommandError(
                "A broadcast from this command needs REDIS_URL set to the Redis the servers "
                "use: without it the channel layer is in-memory and reaches only this process, "
                "where no client is connected."
            )
        tenant = None
        if options["tenant"] is not None:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"tenant {options['tenant']!r} does not exist")
        user = None
        if options["user"] is not None:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"user {options['user']!r} does not exist")
        try:
            receipt = broadcast_send(
                text=options["message"], level=options["level"], tenant=tenant, user=user
            )
        except (BroadcastError, BroadcastUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Broadcast sent to {receipt.audience} (level {receipt.level}).")
