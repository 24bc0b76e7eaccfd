"""Who a token is: a short-lived, bounded cache of token lookups, and lookups shared by the
requests and handshakes that wait for the same one.

Every Streamable HTTP request and every WebSocket handshake with a token needs its Principal,
and the query costs a hop to the one thread that runs authentication and back. This process
keeps the Principal of a token it looked up (by the token's digest, never the token) for
MCP_TOKEN_CACHE_SECONDS at most, never past the token's `expires_at`, and for at most
MCP_TOKEN_CACHE_ENTRIES tokens (the oldest go first). An announced access change (token
revoked or deleted, user deactivated, membership removed, tenant disabled, a tenant's tool set
or limits changed) reaches every web process as a cluster message, and the process's access
guard (mcp_server/cluster/access.py) drops the matching entries before it closes any
connection; a lookup that was running meanwhile is not kept, since it may have read the old
state. The time bound is what a lost announcement costs, as for open connections, so it may
not exceed MCP_ACCESS_CHECK_INTERVAL. Failures are never kept: each one still reaches the
database and the caller's failed-authentication budget (accounts/auth_throttle.py), and
wrong tokens cannot push known ones out.

When a process restarts, its clients reconnect at once, many of them often with the same token
(a fleet of agents), and their lookups queue up for that thread. A handshake whose token already
has a lookup waiting in that queue, not yet started, takes that lookup's outcome instead of
queueing its own: the query starts after the handshake arrived, so the outcome is exactly what
its own query would have answered (a token revoked, expired or deactivated before is refused).
A lookup that has started is never joined.
"""

import asyncio
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Collection
from datetime import datetime
from functools import lru_cache

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from accounts.principal import IDENTIFYING_FIELDS, Principal
from accounts.selectors import AuthFailure, principal_and_expiry_for_token
from accounts.tokens import token_digest

Outcome = Principal | AuthFailure
# What the database answered: the Principal and when its token expires, or the failure.
Answer = tuple[Principal, datetime | None] | AuthFailure
# Longer credentials are never tokens (accounts.selectors refuses them at once).
MAX_SHARED_LENGTH = 200


class TokenCache:
    """Principals by token digest: at most `entries` of them, each for at most `seconds` and
    never past its token's expiry, dropped by `forget` when access changes."""

    def __init__(self, *, entries: int, seconds: float) -> None:
        self.entries = entries
        self.seconds = seconds
        # Bumped by every `forget`: a lookup that began before one is not kept.
        self.generation = 0
        # digest -> (principal, monotonic deadline), oldest first.
        self._kept: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        # Handshakes run on the event loop, tests' lookups on other loops' threads too.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Tokens kept now (some may be past their deadline, not yet dropped)."""
        return len(self._kept)

    def get(self, digest: str) -> Principal | None:
        """The Principal kept for a token digest, if it is still fresh."""
        with self._lock:
            kept = self._kept.get(digest)
            if kept is None:
                return None
            if kept[1] > time.monotonic():
                return kept[0]
            del self._kept[digest]
            return None

    def put(
        self, digest: str, principal: Principal, expires_at: datetime | None, generation: int
    ) -> None:
        """Keep a Principal looked up while the cache was at `generation`, unless access
        changed since, its token expires at once, or nothing is to be kept."""
        if self.seconds <= 0 or self.entries <= 0:
            return
        lifetime = self.seconds
        if expires_at is not None:
            lifetime = min(lifetime, (expires_at - timezone.now()).total_seconds())
            if lifetime <= 0:
                return
        with self._lock:
            if generation != self.generation:
                return
            self._kept.pop(digest, None)
            self._kept[digest] = (principal, time.monotonic() + lifetime)
            while len(self._kept) > self.entries:
                self._kept.popitem(last=False)

    def forget(self, field: str, ids: Collection[int]) -> None:
        """Drop the callers whose `field` (one of IDENTIFYING_FIELDS) is one of `ids`;
        an unknown field drops everything."""
        wanted = set(ids)
        with self._lock:
            self.generation += 1
            if field not in IDENTIFYING_FIELDS:
                self._kept.clear()
                return
            stale = [d for d, (p, _) in self._kept.items() if getattr(p, field) in wanted]
            for digest in stale:
                del self._kept[digest]

    def clear(self) -> None:
        """Drop everything (tests, and a caller that cannot tell what changed)."""
        with self._lock:
            self.generation += 1
            self._kept.clear()


@lru_cache(maxsize=1)
def token_cache() -> TokenCache:
    """This process's cache, sized by MCP_TOKEN_CACHE_ENTRIES and MCP_TOKEN_CACHE_SECONDS."""
    return TokenCache(
        entries=settings.MCP_TOKEN_CACHE_ENTRIES, seconds=settings.MCP_TOKEN_CACHE_SECONDS
    )


class _Lookup:
    """One queued or running lookup of a token, and whether the query has begun."""

    __slots__ = ("generation", "started", "task")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.started = False
        self.task: asyncio.Task[Answer] | None = None

    def run(self, raw: str) -> Answer:
        """On the authentication thread: from here on, nobody may join this lookup."""
        self.started = True
        return principal_and_expiry_for_token(raw)


# Per event loop: digest -> the newest lookup of that token.
_waiting: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Lookup]]" = (
    weakref.WeakKeyDictionary()
)


async def principal_for_token_shared(raw: str) -> Outcome:
    """The caller a raw token names: kept from a recent lookup, else looked up on the
    authentication thread, sharing a lookup of the same token queued there, not started."""
    if len(raw) > MAX_SHARED_LENGTH:
        # Not a token (the selector refuses it unread); not worth a digest either.
        return _outcome(await database_sync_to_async(principal_and_expiry_for_token)(raw))
    digest = token_digest(raw)
    cache = token_cache()
    kept = cache.get(digest)
    if kept is not None:
        return kept
    loop = asyncio.get_running_loop()
    lookups = _waiting.get(loop)
    if lookups is None:
        lookups = _waiting[loop] = {}
    lookup = lookups.get(digest)
    if lookup is None or lookup.started or lookup.task is None:
        lookup = _Lookup(cache.generation)
        # Its own task: a handshake that gives up must not cancel the others' lookup.
        lookup.task = loop.create_task(database_sync_to_async(lookup.run)(raw))
        lookups[digest] = lookup
        lookup.task.add_done_callback(lambda task: _done(lookups, digest, lookup, task))
    return _outcome(await asyncio.shield(lookup.task))


def _outcome(answer: Answer) -> Outcome:
    return answer if isinstance(answer, AuthFailure) else answer[0]


def _done(
    lookups: dict[str, _Lookup], digest: str, lookup: _Lookup, task: "asyncio.Task[Answer]"
) -> None:
    if lookups.get(digest) is lookup:
        del lookups[digest]
    if task.cancelled() or task.exception() is not None:
        return
    answer = task.result()
    if not isinstance(answer, AuthFailure):
        token_cache().put(digest, answer[0], answer[1], lookup.generation)


def waiting_lookups() -> int:
    """Lookups queued or running for this event loop (for tests)."""
    return len(_waiting.get(asyncio.get_running_loop(), {}))
