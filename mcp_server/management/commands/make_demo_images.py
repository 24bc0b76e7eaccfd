"""`manage.py make_demo_images --tenant SLUG --count N --corrupt F [--dir NAME]`."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from mcp_server.demo_images import write_demo_images
from mcp_server.tools.data_paths import DataPathError, tenant_root


class Command(BaseCommand):
    """Write a demo image dataset into a tenant's data directory."""

    help = "Write demo images (varied sizes and formats, some corrupt) for process_images."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare --tenant, --count, --corrupt, --dir and --seed."""
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--count", type=int, default=10_000)
        parser.add_argument("--corrupt", type=float, default=0.015)
        parser.add_argument("--dir", default="demo", help="Directory name under the tenant root.")
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args: Any, **options: Any) -> None:
        """Write the files and say where they are."""
        if not Tenant.objects.filter(slug=options["tenant"]).exists():
            raise CommandError(f"tenant {options['tenant']!r} does not exist")
        if options["count"] < 1 or not 0 <= options["corrupt"] <= 1:
            raise CommandError("--count must be >= 1 and --corrupt between 0 and 1")
        name = options["dir"]
        if not name or "/" in name or name.startswith("."):
            raise CommandError("--dir must be a plain directory name")
        try:
            directory = tenant_root(options["tenant"]) / name
        except DataPathError as exc:
            raise CommandError(str(exc)) from exc
        step = max(1, options["count"] // 10)

        def on_file(done: int) -> None:
            if done % step == 0:
                self.stdout.write(f"  {done:,} files")

        result = write_demo_images(
            directory,
            count=options["count"],
            corrupt=options["corrupt"],
            seed=options["seed"],
            on_file=on_file,
        )
        self.stdout.write(
            f"Wrote {options['count']:,} files to {directory} "
            f"({result.images:,} images, {result.truncated:,} truncated, "
            f"{result.not_images:,} not images). Process them with "
            f"process_images(directory={name!r})."
        )
