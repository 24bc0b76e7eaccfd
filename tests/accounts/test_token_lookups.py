"""Handshakes with the same token share a lookup queued on the authentication thread, and get
exactly what their own lookup would have answered (accounts/token_lookups.py)."""

import asyncio
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
from accounts.selectors import EXPIRED_TOKEN, INVALID_TOKEN, REVOKED_TOKEN, principal_for_token
from accounts.services import IssuedToken, token_create, token_revoke
from accounts.token_lookups import principal_for_token_shared, waiting_lookups
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

    def counted(raw: str) -> Principal | object:
        ran.append(raw)
        return principal_for_token(raw)

    monkeypatch.setattr(token_lookups, "principal_for_token", counted)
    return ran


@pytest.fixture(autouse=True)
async def _close_auth_thread_connections() -> AsyncIterator[None]:
    yield
    await database_sync_to_async(connections.close_all)()


async def test_a_storm_with_one_token_costs_one_lookup(lookups_run: list[str]) -> None:
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


async def test_a_lookup_that_has_started_is_not_joined(lookups_run: list[str]) -> None:
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
