"""`manage.py createtoken USERNAME`: issue an API token; the raw value is the last line."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, token_create_for_username


class Command(BaseCommand):
    """Issue an API token and print it once, alone on the last line of stdout."""

    help = "Create an API token for a user. The raw token is printed once on the last line."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare USERNAME, --name and --expires-in-days."""
        parser.add_argument("username")
        parser.add_argument("--name", default="default")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the token and print it."""
        try:
            issued = token_create_for_username(
                username=options["username"],
                name=options["name"],
                expires_in_days=options["expires_in_days"],
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        expiry = issued.token.expires_at.isoformat() if issued.token.expires_at else "never"
        self.stdout.write(
            f"Token {issued.token.name!r} for {options['username']} (expires: {expiry}). "
            "Copy it now; it is not stored and will not be shown again:"
        )
        self.stdout.write(issued.raw)
