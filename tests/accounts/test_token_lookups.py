"""Token lookups (accounts/token_lookups.py): a known token's Principal is kept, within its
bounds (entries, seconds, the token's expiry) and until access changes; handshakes with the
same token share a lookup queued on the authentication thread, and get exactly what their own
lookup would have answered."""

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone

from accounts import token_lookups
from accounts.principal import Principal
from accounts.selectors import (
    EXPIRED_TOKEN,
    INVALID_TOKEN,
    REVOKED_TOKEN,
    principal_and_expiry_for_token,
)
from accounts.services import IssuedToken, token_create, token_revoke
from accounts.token_lookups import (
    TokenCache,
    principal_for_token_shared,
    token_cache,
    waiting_lookups,
)
from tests.accounts.factories import member_token
from tests.support import yield_to_other_tasks

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 10.0
STORM = 40


@asynccontextmanager
async def auth_thread_busy() -> AsyncIterator[None]:
    """Hold the one authentication thread, so lookups queue behind it, until the block ends."""
    release, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        release.wait(TIMEOUT)

    held = asyncio.ensure_future(database_sync_to_async(hold)())
    await asyncio.to_thread(holding.wait, TIMEOUT)
    try:
        yield
    finally:
        release.set()
        await held


@pytest.fixture
def lookups_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The raw tokens of the lookups that reached the database, in order."""
    ran: list[str] = []

    def counted(raw: str) -> object:
        ran.append(raw)
        return principal_and_expiry_for_token(raw)

    monkeypatch.setattr(token_lookups, "principal_and_expiry_for_token", counted)
    return ran


@pytest.fixture
def nothing_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Principal is kept, so every call reaches the shared lookups."""
    monkeypatch.setattr(token_cache(), "seconds", 0.0)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(token_lookups.time, "monotonic", clock)
    return clock


@pytest.fixture(autouse=True)
async def _close_auth_thread_connections() -> AsyncIterator[None]:
    yield
    await database_sync_to_async(connections.close_all)()


async def test_a_storm_with_one_token_costs_one_lookup(
    lookups_run: list[str], nothing_kept: None
) -> None:
    issued = await sync_to_async(member_token)("alice")
    async with auth_thread_busy():
        storm = [
            asyncio.ensure_future(principal_for_token_shared(issued.raw)) for _ in range(STORM)
        ]
        await yield_to_other_tasks()
        assert waiting_lookups() == 1
    outcomes = await asyncio.wait_for(asyncio.gather(*storm), TIMEOUT)
    assert all(isinstance(o, Principal) and o.username == "alice" for o in outcomes)
    assert lookups_run == [issued.raw]
    assert waiting_lookups() == 0


async def test_wrong_revoked_and_expired_tokens_are_refused_in_a_storm(
    lookups_run: list[str],
) -> None:
    good = await sync_to_async(member_token)("alice")
    revoked = await sync_to_async(token_create)(user=good.token.user, name="revoked")
    expired = await sync_to_async(token_create)(
        user=good.token.user, name="expired", expires_at=timezone.now() - timedelta(seconds=1)
    )
    await sync_to_async(token_revoke)(token=revoked.token)
    wrong = good.raw[:-1] + ("A" if good.raw[-1] != "A" else "B")
    kinds = [good.raw, wrong, revoked.raw, expired.raw, "not-a-token", "mcp_" + "x" * 500]
    async with auth_thread_busy():
        storm = [
            asyncio.ensure_future(principal_for_token_shared(kinds[i % len(kinds)]))
            for i in range(STORM * len(kinds))
        ]
        await yield_to_other_tasks()
    outcomes = await asyncio.wait_for(asyncio.gather(*storm), TIMEOUT)
    for i, outcome in enumerate(outcomes):
        expected = [None, INVALID_TOKEN, REVOKED_TOKEN, EXPIRED_TOKEN, INVALID_TOKEN, INVALID_TOKEN]
        if i % len(kinds) == 0:
            assert isinstance(outcome, Principal)
        else:
            assert outcome == expected[i % len(kinds)]
    # One shared lookup per distinct token of the usual length; the overlong one is its own.
    assert sorted(set(lookups_run)) == sorted(set(kinds))


async def test_a_revocation_before_the_lookup_runs_refuses_every_waiting_handshake(
    lookups_run: list[str],
) -> None:
    issued: IssuedToken = await sync_to_async(member_token)("alice")
    async with auth_thread_busy():
        before = [asyncio.ensure_future(principal_for_token_shared(issued.raw)) for _ in range(5)]
        await yield_to_other_tasks()
        # Revoked on another thread while the lookup waits for the busy authentication thread.
        await sync_to_async(token_revoke, thread_sensitive=False)(token=issued.token)
        await sync_to_async(connections.close_all, thread_sensitive=False)()
        after = [asyncio.ensure_future(principal_for_token_shared(issued.raw)) for _ in range(5)]
        await yield_to_other_tasks()
    outcomes = await asyncio.wait_for(asyncio.gather(*before, *after), TIMEOUT)
    assert outcomes == [REVOKED_TOKEN] * 10
    assert lookups_run == [issued.raw]


async def test_a_lookup_that_has_started_is_not_joined(
    lookups_run: list[str], nothing_kept: None
) -> None:
    issued = await sync_to_async(member_token)("alice")
    first = asyncio.ensure_future(principal_for_token_shared(issued.raw))
    await asyncio.wait_for(first, TIMEOUT)
    # The first lookup ran: a new handshake queues its own, which sees the revocation.
    await sync_to_async(token_revoke, thread_sensitive=False)(token=issued.token)
    await sync_to_async(connections.close_all, thread_sensitive=False)()
    assert await principal_for_token_shared(issued.raw) == REVOKED_TOKEN
    assert lookups_run == [issued.raw, issued.raw]


async def test_a_handshake_that_gives_up_does_not_cancel_the_others() -> None:
    issued = await sync_to_async(member_token)("alice")
    async with auth_thread_busy():
        leader = asyncio.ensure_future(principal_for_token_shared(issued.raw))
        follower = asyncio.ensure_future(principal_for_token_shared(issued.raw))
        await yield_to_other_tasks()
        leader.cancel()
    outcome = await asyncio.wait_for(follower, TIMEOUT)
    assert isinstance(outcome, Principal)
    with pytest.raises(asyncio.CancelledError):
        await leader


# --- the cache ---------------------------------------------------------------------------------


async def test_a_known_token_is_looked_up_once_then_kept(lookups_run: list[str]) -> None:
    issued = await sync_to_async(member_token)("alice")
    first = await principal_for_token_shared(issued.raw)
    again = await principal_for_token_shared(issued.raw)
    assert isinstance(first, Principal) and again == first
    assert lookups_run == [issued.raw]
    assert len(token_cache()) == 1


async def test_failures_are_never_kept(lookups_run: list[str]) -> None:
    good = await sync_to_async(member_token)("alice")
    revoked = await sync_to_async(token_create)(user=good.token.user, name="revoked")
    await sync_to_async(token_revoke)(token=revoked.token)
    wrong = good.raw[:-1] + ("A" if good.raw[-1] != "A" else "B")
    for _ in range(3):
        assert await principal_for_token_shared(wrong) == INVALID_TOKEN
        assert await principal_for_token_shared(revoked.raw) == REVOKED_TOKEN
    assert lookups_run == [wrong, revoked.raw] * 3
    assert len(token_cache()) == 0


async def test_an_entry_lives_its_seconds_then_the_token_is_looked_up_again(
    lookups_run: list[str], clock: Clock
) -> None:
    issued = await sync_to_async(member_token)("alice")
    seconds = token_cache().seconds
    assert isinstance(await principal_for_token_shared(issued.raw), Principal)
    clock.now += seconds - 0.01
    assert isinstance(await principal_for_token_shared(issued.raw), Principal)
    assert lookups_run == [issued.raw]
    # Revoked without an announcement reaching this process: refused once the entry is old.
    await sync_to_async(token_revoke, thread_sensitive=False)(token=issued.token)
    clock.now += 0.02
    assert await principal_for_token_shared(issued.raw) == REVOKED_TOKEN
    assert lookups_run == [issued.raw, issued.raw]


async def test_an_entry_never_outlives_its_tokens_expiry(
    lookups_run: list[str], clock: Clock
) -> None:
    issued = await sync_to_async(member_token)("alice")
    soon = await sync_to_async(token_create)(
        user=issued.token.user, name="soon", expires_at=timezone.now() + timedelta(seconds=1)
    )
    assert token_cache().seconds > 1
    assert isinstance(await principal_for_token_shared(soon.raw), Principal)
    assert isinstance(await principal_for_token_shared(soon.raw), Principal)
    assert lookups_run == [soon.raw]
    clock.now += 1.0
    # Looked up again (whatever it answers by then), though the cache's own seconds remain.
    await principal_for_token_shared(soon.raw)
    assert lookups_run == [soon.raw, soon.raw]


def test_the_cache_keeps_at_most_its_entries_the_oldest_going_first() -> None:
    cache = TokenCache(entries=2, seconds=60)
    principals = [_principal(i) for i in range(3)]
    for i, principal in enumerate(principals):
        cache.put(f"d{i}", principal, None, cache.generation)
    assert len(cache) == 2
    assert cache.get("d0") is None
    assert cache.get("d1") == principals[1] and cache.get("d2") == principals[2]


def test_a_token_that_has_expired_or_a_cache_of_nothing_keeps_nothing() -> None:
    cache = TokenCache(entries=10, seconds=60)
    cache.put("d", _principal(1), timezone.now() - timedelta(seconds=1), cache.generation)
    assert len(cache) == 0
    for off in (TokenCache(entries=0, seconds=60), TokenCache(entries=10, seconds=0)):
        off.put("d", _principal(1), None, off.generation)
        assert len(off) == 0 and off.get("d") is None


def test_forget_drops_the_callers_named_and_only_them() -> None:
    cache = TokenCache(entries=10, seconds=60)
    # token i of user i // 2 in tenant i // 4
    for i in range(8):
        cache.put(f"d{i}", _principal(i), None, cache.generation)
    cache.forget("token_id", [0])
    cache.forget("user_id", [1])  # tokens 2 and 3
    cache.forget("tenant_id", [1])  # tokens 4 to 7
    assert [i for i in range(8) if cache.get(f"d{i}") is not None] == [1]
    cache.forget("username", [1])  # not a field a change names callers by: everything
    assert len(cache) == 0


def test_a_lookup_that_began_before_a_forget_is_not_kept() -> None:
    cache = TokenCache(entries=10, seconds=60)
    began = cache.generation
    cache.forget("tenant_id", [99])
    cache.put("d", _principal(1), None, began)
    assert cache.get("d") is None
    cache.put("d", _principal(1), None, cache.generation)
    assert cache.get("d") == _principal(1)


async def test_a_lookup_running_while_access_changes_is_not_kept(lookups_run: list[str]) -> None:
    issued = await sync_to_async(member_token)("alice")
    async with auth_thread_busy():
        waiting = asyncio.ensure_future(principal_for_token_shared(issued.raw))
        await yield_to_other_tasks()
        # The announcement of a change arrives while the lookup may be reading the old state.
        token_cache().forget("token_id", [issued.token.pk])
    assert isinstance(await asyncio.wait_for(waiting, TIMEOUT), Principal)
    assert len(token_cache()) == 0
    assert isinstance(await principal_for_token_shared(issued.raw), Principal)
    assert lookups_run == [issued.raw, issued.raw]
    assert len(token_cache()) == 1


def _principal(i: int) -> Principal:
    return Principal(
        user_id=i // 2,
        username=f"u{i // 2}",
        tenant_id=i // 4,
        tenant_slug=f"t{i // 4}",
        is_tenant_admin=False,
        enabled_tools=None,
        token_id=i,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MCP_ACCESS_CHECK_INTERVAL": "2", "MCP_TOKEN_CACHE_SECONDS": "3"},
            "MCP_TOKEN_CACHE_SECONDS must be between 0 and MCP_ACCESS_CHECK_INTERVAL (2)",
        ),
        ({"MCP_TOKEN_CACHE_SECONDS": "-1"}, "MCP_TOKEN_CACHE_SECONDS must be between 0"),
        ({"MCP_TOKEN_CACHE_ENTRIES": "-1"}, "MCP_TOKEN_CACHE_ENTRIES must not be negative"),
    ],
)
def test_settings_refuse_a_cache_that_outlives_the_access_check(
    env: dict[str, str], message: str
) -> None:
    started = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert message in started.stderr
