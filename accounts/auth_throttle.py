"""Failed authentications per client address: past the budget, refused before any query.

Every failed token (or session) check costs a database query on the thread that every
tenant's authentication shares; a client that keeps failing is refused without one, for the
WebSocket handshake and the REST API alike, until its bucket refills. The address is the
ASGI scope's client (Django's REMOTE_ADDR): behind a reverse proxy, run `manage.py serve
--proxy-headers --forwarded-allow-ips=<proxy>` so that it is the client's, not the proxy's.
Counts are per web process.
"""

import math
import threading
import time
from functools import lru_cache
from typing import Any

from django.conf import settings

from accounts.selectors import AuthFailure
from accounts.token_bucket import BucketsByKey


class FailedAuthThrottle:
    """A token bucket of failures per address: `per_minute` at once, then `per_minute`/60 s."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        # The REST API authenticates on Django's sync thread, the handshake on the event loop.
        self._lock = threading.Lock()
        self._buckets: BucketsByKey[str] = BucketsByKey()

    def refusal(self, address: str | None) -> AuthFailure | None:
        """A 429 for an address that spent its failures (nothing is counted), else None."""
        if address is None or self.per_minute <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.peek(address)
            if bucket is None:
                return None
            bucket.refill(now)
            wait = bucket.wait_for(1)
        if wait <= 0:
            return None
        return AuthFailure(
            429,
            "too many failed authentications from this address; retry later",
            retry_after=max(1, math.ceil(wait)),
        )

    def record_failure(self, address: str | None) -> None:
        """Count one failed authentication from `address`."""
        if address is None or self.per_minute <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self._buckets.sweep(now)
            bucket = self._buckets.get(address, self.per_minute / 60.0, self.per_minute, now)
            bucket.refill(now)
            bucket.tokens = max(0.0, bucket.tokens - 1)

    def clear(self) -> None:
        """Forget every address (tests)."""
        with self._lock:
            self._buckets.clear()


@lru_cache(maxsize=1)
def failed_auth_throttle() -> FailedAuthThrottle:
    """This process's throttle, sized by MCP_AUTH_FAILURES_PER_MINUTE."""
    return FailedAuthThrottle(settings.MCP_AUTH_FAILURES_PER_MINUTE)


def scope_client_address(scope: dict[str, Any]) -> str | None:
    """The client address of an ASGI scope (None for a Unix socket without proxy headers)."""
    client = scope.get("client")
    return str(client[0]) if client else None
