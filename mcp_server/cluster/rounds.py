"""Periodic duties of a process (heartbeat, access checks): one round every few seconds."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def every(interval: float, round_: Callable[[], Awaitable[None]], *, failure: str) -> None:
    """Run `round_` every `interval` seconds until cancelled; a round that fails is logged
    (`failure` says which) and the next one runs as planned."""
    while True:
        await asyncio.sleep(interval)
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("%s; retrying next round", failure, exc_info=True)
