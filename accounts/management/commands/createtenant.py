"""`manage.py createtenant SLUG`: create a tenant."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, tenant_create


class Command(BaseCommand):
    """Create a tenant."""

    help = "Create a tenant with the given slug."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare SLUG and --name."""
        parser.add_argument("slug")
        parser.add_argument("--name", default="", help="Display name (default: the slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the tenant or fail with a clear message."""
        try:
            tenant = tenant_create(slug=options["slug"], name=options["name"])
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created tenant {tenant.slug}")
