"""`manage.py serve`: the production ASGI server (uvicorn + uvloop + httptools).

Chosen over daphne by the benchmark (docs/BENCHMARKS.md): the same Channels app serves more
calls per second with less memory per connection. WebSocket limits come from settings, and
logging stays Django's, so credentials are redacted in uvicorn's lines too.
"""

import asyncio
import gc
import logging
import signal
import socket
import sys
from argparse import ArgumentParser
from types import FrameType
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from mcp_server.lifespan import RuntimeLifespan
from mcp_server.survivor_freezer import SurvivorFreezer, freeze_start_up_heap
from mcp_server.uvicorn_websocket import McpHttpToolsProtocol, McpWebSocketProtocol

logger = logging.getLogger(__name__)

# The youngest generation is collected after this many more allocations than frees (CPython:
# 700), the middle one after every second young collection (CPython: every eleventh). What a
# request makes is freed by reference counting, and a young collection walks whatever young
# objects are alive (the requests in flight) to find nothing: at 700 they took ~6 % of an
# HTTP call's CPU. Where allocations outrun frees (a connection storm), the middle and full
# collections come every 3,850 x 2 = 700 x 11 = 7,700 net allocations, as before, so the
# survivor freezer sees the storm at the same pace (docs/BENCHMARKS.md, issue 13).
YOUNG_THRESHOLD = 3_850
MIDDLE_THRESHOLD = 1


class GracefulServer(uvicorn.Server):
    """uvicorn, saying goodbye first: on shutdown it stops accepting, tells every client it is
    going away and interrupts this process's operations, then closes the sockets with 1012."""

    def __init__(self, config: uvicorn.Config, *, application: RuntimeLifespan) -> None:
        super().__init__(config)
        self.application = application
        self.freezer: SurvivorFreezer | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn, then exempt what exists now from the cyclic garbage collector, and
        what survives its full collections while connections pile up (MCP_GC_FREEZE_SURVIVORS)."""
        await super().startup(sockets)
        freeze_start_up_heap()
        gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, gc.get_threshold()[2])
        runtime = self.application.runtime
        if settings.MCP_GC_FREEZE_SURVIVORS and runtime is not None:
            self.freezer = SurvivorFreezer(connections=runtime.connections.lasting)
            self.freezer.install()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, say goodbye within the shutdown timeout, then shut down as uvicorn."""
        for server in self.servers:
            server.close()
        runtime = self.application.runtime
        if runtime is not None:
            count = len(runtime.connections)
            logger.info("telling %d connections this server is going away", count)
            try:
                timeout = self.config.timeout_graceful_shutdown
                await asyncio.wait_for(runtime.shut_down_web(), timeout)
            except TimeoutError:
                logger.warning("goodbyes took longer than the shutdown timeout")
        await super().shutdown(sockets)
        if self.freezer is not None:
            self.freezer.uninstall()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # uvicorn restores the previous handler and re-raises the signal once it has shut down;
    # without this the default action would kill the process before history is flushed.
    sys.exit(0)


class Command(BaseCommand):
    """Serve HTTP and WebSocket on one port."""

    help = "Serve the service with uvicorn (production server settings)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare --host, --port and --proxy-headers."""
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="Trust X-Forwarded-* from --forwarded-allow-ips (behind a reverse proxy).",
        )
        parser.add_argument("--forwarded-allow-ips", default="127.0.0.1")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run uvicorn until interrupted, then flush what history is still buffered."""
        from config.asgi import application

        signal.signal(signal.SIGTERM, _exit_cleanly)
        try:
            self._serve(application, options)
        finally:
            if application.runtime is not None:
                application.runtime.writer.stop()

    def _serve(self, application: RuntimeLifespan, options: dict[str, Any]) -> None:
        config = uvicorn.Config(
            application,
            host=options["host"],
            port=options["port"],
            loop="uvloop",
            http=McpHttpToolsProtocol,
            ws=McpWebSocketProtocol,
            ws_max_size=settings.MCP_MAX_MESSAGE_BYTES,
            ws_ping_interval=settings.MCP_WS_PING_INTERVAL,
            ws_ping_timeout=settings.MCP_WS_PING_TIMEOUT,
            ws_per_message_deflate=settings.MCP_WS_PER_MESSAGE_DEFLATE,
            # The lifespan builds and starts the process's runtime (mcp_server.lifespan).
            lifespan="on",
            log_config=None,
            # Off when its lines would be dropped anyway (LOG_LEVEL above INFO): uvicorn
            # formats the client address and path of every request before the level check.
            access_log=logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO),
            proxy_headers=options["proxy_headers"],
            forwarded_allow_ips=options["forwarded_allow_ips"],
            server_header=False,
            timeout_graceful_shutdown=max(1, int(settings.MCP_SHUTDOWN_TIMEOUT)),
        )
        GracefulServer(config, application=application).run()
