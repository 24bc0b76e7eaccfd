"""Token lookups shared by the handshakes that wait for the same one, with nothing cached.

Every WebSocket handshake with a token is looked up on the one thread that runs
authentication, and the hop there and back costs the event loop more than the query. When a
process restarts, its clients reconnect at once, many of them often with the same token (a
fleet of agents), and their lookups queue up for that thread. A handshake whose token already
has a lookup waiting in that queue, not yet started, takes that lookup's outcome instead of
queueing its own: the query starts after the handshake arrived, so the outcome is exactly what
its own query would have answered (a token revoked, expired or deactivated before is refused).
A lookup that has started is never joined, and no outcome outlives its lookup.
"""

import asyncio
import weakref

from channels.db import database_sync_to_async

from accounts.principal import Principal
from accounts.selectors import AuthFailure, principal_for_token
from accounts.tokens import token_digest

Outcome = Principal | AuthFailure
# Longer credentials are never tokens (accounts.selectors refuses them at once).
MAX_SHARED_LENGTH = 200


class _Lookup:
    """One queued or running lookup of a token, and whether the query has begun."""

    __slots__ = ("started", "task")

    def __init__(self) -> None:
        self.started = False
        self.task: asyncio.Task[Outcome] | None = None

    def run(self, raw: str) -> Outcome:
        """On the authentication thread: from here on, nobody may join this lookup."""
        self.started = True
        return principal_for_token(raw)


# Per event loop: digest -> the newest lookup of that token.
_waiting: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Lookup]]" = (
    weakref.WeakKeyDictionary()
)


async def principal_for_token_shared(raw: str) -> Outcome:
    """`principal_for_token` on the authentication thread, sharing a lookup of the same token
    that is queued there and has not started."""
    if len(raw) > MAX_SHARED_LENGTH:
        # Not a token (the selector refuses it unread); not worth a digest either.
        return await database_sync_to_async(principal_for_token)(raw)
    loop = asyncio.get_running_loop()
    lookups = _waiting.get(loop)
    if lookups is None:
        lookups = _waiting[loop] = {}
    digest = token_digest(raw)
    lookup = lookups.get(digest)
    if lookup is None or lookup.started or lookup.task is None:
        lookup = _Lookup()
        # Its own task: a handshake that gives up must not cancel the others' lookup.
        lookup.task = loop.create_task(database_sync_to_async(lookup.run)(raw))
        lookups[digest] = lookup
        lookup.task.add_done_callback(lambda _: _forget(lookups, digest, lookup))
    return await asyncio.shield(lookup.task)


def _forget(lookups: dict[str, _Lookup], digest: str, lookup: _Lookup) -> None:
    if lookups.get(digest) is lookup:
        del lookups[digest]


def waiting_lookups() -> int:
    """Lookups queued or running for this event loop (for tests)."""
    return len(_waiting.get(asyncio.get_running_loop(), {}))
