"""The process's runtime around the ASGI application: built and started at lifespan start-up,
handed to every connection in `scope["runtime"]`, stopped at shutdown.

Liveness duties run from start, not from the first connection, so a restarted process reaps
the runs its predecessor left behind whether or not anyone connects. A server that sends no
lifespan events (daphne, which `runserver` and the daphne benchmark use) gets its runtime
started by the first connection instead.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings

from mcp_server.process_runtime import ProcessRuntime, build_runtime, install_runtime

logger = logging.getLogger(__name__)

Application = Callable[..., Any]


class RuntimeLifespan:
    """ASGI middleware that owns the process's runtime (or uses the one a test gives it)."""

    def __init__(self, app: Application, *, runtime: ProcessRuntime | None = None) -> None:
        self.app = app
        self.runtime = runtime
        self._starting: asyncio.Lock | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the lifespan protocol, or the application with the runtime in its scope."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        scope["runtime"] = await self._started()
        await self.app(scope, receive, send)

    async def _started(self) -> ProcessRuntime:
        runtime = self.runtime
        if runtime is not None:
            return runtime
        # No lifespan ran (daphne): build and start once, on the first connection.
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.runtime is None:
                self.runtime = await _start(build_runtime(web=True))
            return self.runtime

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.runtime = await _start(self.runtime or build_runtime(web=True))
                except Exception as exc:
                    logger.exception("the process runtime could not start")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.runtime is not None:
                    # Leaving the groups needs Redis, which may be the thing that is down.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.runtime.stop(), settings.MCP_DEPENDENCY_TIMEOUT)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _start(runtime: ProcessRuntime) -> ProcessRuntime:
    await runtime.start()
    install_runtime(runtime)
    return runtime
