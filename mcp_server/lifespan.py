"""The ASGI lifespan of a web process: its liveness duties run from start, not from the first
connection, so a restarted process reaps the runs its predecessor left behind whether or not
anyone connects."""

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings

from mcp_server.cluster.node import cluster_node, running_node

logger = logging.getLogger(__name__)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Start this process's cluster node (heartbeat, reaper, recovery, client pings) at
    start-up; stop it at shutdown if the server has not already."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await cluster_node().start()
            except Exception as exc:
                logger.exception("the cluster node could not start")
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            node = running_node()
            if node is not None:
                # Leaving the groups needs Redis, which may be the thing that is down.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(node.stop(), settings.MCP_DEPENDENCY_TIMEOUT)
            await send({"type": "lifespan.shutdown.complete"})
            return
