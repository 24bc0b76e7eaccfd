"""Where an HTTP session's state lives, so that any web process serves any of its requests.

A record holds what `initialize` settled (owner, revision, client capabilities) and what the
session changed since (its logging level, its resource subscriptions); it expires after
MCP_HTTP_SESSION_IDLE_SECONDS without a request. With REDIS_URL the records are Redis keys
every web process reads; without (one process, `make run`) they live in this process's
memory, with the same expiry and caps.
Live sessions are counted per user and tenant (sorted sets scored by expiry) to bound them.
"""

import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from accounts.principal import Principal
from accounts.selectors import AuthFailure


def new_session_id() -> str:
    """An unguessable session id: 256 random bits, visible ASCII only (as the transport asks)."""
    return secrets.token_urlsafe(32)


@dataclass(slots=True)
class SessionRecord:
    """One HTTP session as every web process sees it. A loaded record is never changed in
    place (the in-memory store hands out the one it keeps): save a changed copy
    (`dataclasses.replace`)."""

    session_id: str
    user_id: int
    tenant_id: int
    protocol_version: str
    client_capabilities: dict[str, Any]
    log_level: str
    created_at: float
    last_seen_at: float
    # resources/subscribe's URIs (its GET stream, on whichever process, delivers updates).
    resource_subscriptions: list[str] = field(default_factory=list)

    def owned_by(self, principal: Principal) -> bool:
        """Whether `principal` may use this session (the user that initialized it)."""
        return self.user_id == principal.user_id and self.tenant_id == principal.tenant_id

    def encode(self) -> bytes:
        """The record as stored."""
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> "SessionRecord":
        """A stored record."""
        return cls(**orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class SessionCaps:
    """How many live sessions a user and a tenant may hold (0: unbounded)."""

    per_user: int
    per_tenant: int


class SessionStore(Protocol):
    """Records of live HTTP sessions, with their idle expiry and per-owner caps."""

    async def create(self, record: SessionRecord, caps: SessionCaps) -> AuthFailure | None:
        """Store a new session, or the refusal when its owner is at a cap."""

    async def load(self, session_id: str) -> SessionRecord | None:
        """The live record (its idle expiry pushed back), or None: unknown, ended or expired."""

    async def save(self, record: SessionRecord) -> None:
        """Store a changed record (e.g. a new logging level)."""

    async def end(self, session_id: str) -> SessionRecord | None:
        """End a session (DELETE, revoked access); the record it had, if it was live."""


def _cap_refusal(kind: str, cap: int) -> AuthFailure:
    return AuthFailure(429, f"too many live MCP sessions for this {kind} (limit {cap})")


class MemorySessionStore:
    """The store of a single process (no REDIS_URL)."""

    def __init__(self, *, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._records: dict[str, tuple[float, SessionRecord]] = {}

    def _sweep(self, now: float) -> None:
        expired = [sid for sid, (expires, _) in self._records.items() if expires <= now]
        for sid in expired:
            del self._records[sid]

    async def create(self, record: SessionRecord, caps: SessionCaps) -> AuthFailure | None:
        """Store a new session, or the refusal when its owner is at a cap."""
        now = time.time()
        self._sweep(now)
        live = [r for _, r in self._records.values()]
        if caps.per_user and sum(r.user_id == record.user_id for r in live) >= caps.per_user:
            return _cap_refusal("user", caps.per_user)
        if caps.per_tenant and sum(r.tenant_id == record.tenant_id for r in live) >= (
            caps.per_tenant
        ):
            return _cap_refusal("tenant", caps.per_tenant)
        self._records[record.session_id] = (now + self.idle_seconds, record)
        return None

    async def load(self, session_id: str) -> SessionRecord | None:
        """The live record (its idle expiry pushed back), or None."""
        now = time.time()
        entry = self._records.get(session_id)
        if entry is None or entry[0] <= now:
            self._records.pop(session_id, None)
            return None
        record = entry[1]
        record.last_seen_at = now
        self._records[session_id] = (now + self.idle_seconds, record)
        # The stored record itself, not a copy: nothing changes a loaded record in place (a
        # change is saved as a new one, `dataclasses.replace`), so it counts only once saved,
        # as with Redis. Copying it for every request was 1.5 % of a loaded process.
        return record

    async def save(self, record: SessionRecord) -> None:
        """Store a changed record."""
        if record.session_id in self._records:
            self._records[record.session_id] = (time.time() + self.idle_seconds, record)

    async def end(self, session_id: str) -> SessionRecord | None:
        """End a session; the record it had, if live."""
        entry = self._records.pop(session_id, None)
        return entry[1] if entry is not None and entry[0] > time.time() else None


class RedisSessionStore:
    """The store every web process of a cluster shares.

    Keys (under `prefix`): `http-session:<id>` holds the record with an idle TTL;
    `http-sessions:user:<id>` and `http-sessions:tenant:<id>` are sorted sets of session ids
    scored by their expiry, trimmed before each count. The cap check and the insert are two
    round trips, so sessions created at the same instant may overshoot a cap by a few.
    """

    def __init__(self, redis: Redis, *, prefix: str, idle_seconds: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.idle_seconds = idle_seconds

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:http-session:{session_id}"

    def _owner_keys(self, record: SessionRecord) -> tuple[str, str]:
        return (
            f"{self.prefix}:http-sessions:user:{record.user_id}",
            f"{self.prefix}:http-sessions:tenant:{record.tenant_id}",
        )

    async def create(self, record: SessionRecord, caps: SessionCaps) -> AuthFailure | None:
        """Store a new session, or the refusal when its owner is at a cap."""
        now = time.time()
        user_key, tenant_key = self._owner_keys(record)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(user_key, "-inf", now)
            pipe.zcard(user_key)
            pipe.zremrangebyscore(tenant_key, "-inf", now)
            pipe.zcard(tenant_key)
            _, users, _, tenants = await pipe.execute()
        if caps.per_user and users >= caps.per_user:
            return _cap_refusal("user", caps.per_user)
        if caps.per_tenant and tenants >= caps.per_tenant:
            return _cap_refusal("tenant", caps.per_tenant)
        await self._write(record, now)
        return None

    async def _write(self, record: SessionRecord, now: float) -> None:
        expires = now + self.idle_seconds
        ttl = max(1, int(self.idle_seconds))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(record.session_id), record.encode(), ex=ttl)
            for key in self._owner_keys(record):
                pipe.zadd(key, {record.session_id: expires})
                pipe.expire(key, ttl)
            await pipe.execute()

    async def load(self, session_id: str) -> SessionRecord | None:
        """The live record (its idle expiry pushed back), or None."""
        raw = await self.redis.get(self._key(session_id))
        if raw is None:
            return None
        record = SessionRecord.decode(raw)
        now = time.time()
        record.last_seen_at = now
        await self._write(record, now)
        return record

    async def save(self, record: SessionRecord) -> None:
        """Store a changed record (only while it is live)."""
        if await self.redis.exists(self._key(record.session_id)):
            await self._write(record, time.time())

    async def end(self, session_id: str) -> SessionRecord | None:
        """End a session; the record it had, if live."""
        raw = await self.redis.getdel(self._key(session_id))
        if raw is None:
            return None
        record = SessionRecord.decode(raw)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in self._owner_keys(record):
                pipe.zrem(key, session_id)
            await pipe.execute()
        return record
