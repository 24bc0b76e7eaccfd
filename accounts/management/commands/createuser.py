"""`manage.py createuser USERNAME --tenant SLUG [--tenant-admin]`: create a tenant user."""

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, user_create


class Command(BaseCommand):
    """Create a user who belongs to a tenant."""

    help = "Create a user in a tenant, as a member or with --tenant-admin as its admin."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare USERNAME, --tenant, --tenant-admin, --email and --password-stdin."""
        parser.add_argument("username")
        parser.add_argument("--tenant", required=True, help="Slug of an existing tenant.")
        parser.add_argument("--tenant-admin", action="store_true")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read a password for browser login from standard input (else none is set).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the user or fail with a clear message."""
        password = sys.stdin.readline().rstrip("\n") if options["password_stdin"] else None
        try:
            user = user_create(
                username=options["username"],
                tenant_slug=options["tenant"],
                tenant_admin=options["tenant_admin"],
                email=options["email"],
                password=password or None,
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        role = "admin" if options["tenant_admin"] else "member"
        self.stdout.write(f"Created user {user.get_username()} ({role} of {options['tenant']})")
