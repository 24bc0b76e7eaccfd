"""`manage.py runoperations`: a worker process that runs tool calls handed over by web processes."""

from typing import Any

import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mcp_server.cluster.worker import OperationWorker
from mcp_server.process_runtime import build_runtime, install_runtime
from mcp_server.survivor_freezer import freeze_start_up_heap


class Command(BaseCommand):
    """Run operations from the channel layer until SIGTERM, then drain."""

    help = "Run tool calls handed over through the channel layer (MCP_EXECUTION=worker)."

    def add_arguments(self, parser: Any) -> None:
        """Declare --grace."""
        parser.add_argument(
            "--grace",
            type=float,
            default=None,
            help="Seconds running operations get to finish on SIGTERM (MCP_WORKER_GRACE).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Serve until stopped."""
        if not settings.REDIS_URL:
            raise CommandError(
                "runoperations needs REDIS_URL: web processes reach workers through Redis."
            )
        grace = options["grace"] if options["grace"] is not None else settings.MCP_WORKER_GRACE
        uvloop.run(self._run(grace))

    async def _run(self, grace: float) -> None:
        # Built on the loop it runs on (its locks and events belong to that loop).
        runtime = build_runtime(web=False)
        install_runtime(runtime)
        freeze_start_up_heap()
        await OperationWorker(runtime=runtime, grace=grace).run()
