"""The access guard of a process: announcements and the periodic re-check close connections
whose access was taken away (with the handshake's code and reason), update tool sets, and the
re-check stays a few bounded queries however many connections are open."""

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import selectors
from accounts.models import ApiToken, Tenant
from accounts.principal import Principal
from accounts.selectors import access_states, principal_for_token
from accounts.services import IssuedToken
from accounts.token_lookups import principal_for_token_shared, token_cache
from accounts.tokens import token_digest
from mcp_server.admission import ConnectionAdmission, MessageAllowance
from mcp_server.cluster.access import AccessGuard
from mcp_server.cluster.database import close_database_connections
from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.session_messages import AccessRevoked, TenantChanged
from mcp_server.identity import ServerIdentity
from mcp_server.runtime.runner import OperationRunner
from mcp_server.session import McpSession
from mcp_server.tools.catalog import catalog_for_principal
from tests.accounts.factories import member_create, member_token
from tests.support import Wire, make_principal
from tests.ws.session_support import local_executor

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}


class Connection:
    """A session with its wire and the close it asked its transport for."""

    def __init__(
        self,
        principal: Principal,
        runner: OperationRunner,
        allowance: MessageAllowance | None = None,
    ) -> None:
        self.wire = Wire()
        self.closed_with: tuple[int, str] | None = None
        self.session = McpSession(
            principal=principal,
            catalog=catalog_for_principal(principal),
            identity=ServerIdentity(name="t", title="T", version="0"),
            executor=local_executor(runner),
            admission=runner.admission,
            connection_id=f"conn-{id(self)}",
            send=self.wire.send,
            close_transport=self._close,
            message_allowance=allowance,
        )

    async def _close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [m for m in self.wire.messages if m.get("method") == method]


def _principal(issued: IssuedToken) -> Principal:
    outcome = principal_for_token(issued.raw)
    assert isinstance(outcome, Principal), outcome
    return outcome


# --- the selector ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_access_states_say_what_a_handshake_would(django_assert_num_queries: Any) -> None:
    good, revoked, expired = (member_token(n, tenant_slug="acme") for n in ("al", "bo", "cy"))
    idle_tenant = member_token("di", tenant_slug="idle")
    inactive = member_token("ed", tenant_slug="acme")
    gone = member_token("fi", tenant_slug="acme")
    ApiToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now())
    ApiToken.objects.filter(pk=expired.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    Tenant.objects.filter(slug="idle").update(is_active=False)
    Tenant.objects.filter(slug="acme").update(enabled_tools=["add"])
    get_user_model().objects.filter(pk=inactive.token.user_id).update(is_active=False)
    gone_pk = gone.token.pk
    gone.token.delete()
    session_user = member_create("gi", tenant_slug="open")
    Tenant.objects.filter(slug="open").update(disabled_tools=["echo"])
    issued = [good, revoked, expired, idle_tenant, inactive]
    with django_assert_num_queries(2):  # one for the tokens, one for the session users
        states = access_states(
            token_ids=[i.token.pk for i in issued] + [gone_pk], user_ids=[session_user.pk]
        )
    said = {i.token.user.username: states.by_token[i.token.pk].failure for i in issued}
    assert said == {
        "al": None,
        "bo": selectors.REVOKED_TOKEN,
        "cy": selectors.EXPIRED_TOKEN,
        "di": selectors.INACTIVE_ACCOUNT,
        "ed": selectors.INACTIVE_ACCOUNT,
    }
    assert states.by_token[good.token.pk].enabled_tools == frozenset({"add"})
    assert gone_pk not in states.by_token  # for_principal: invalid token
    assert states.by_user[session_user.pk].failure is None
    assert states.by_user[session_user.pk].enabled_tools is None
    assert states.by_user[session_user.pk].disabled_tools == frozenset({"echo"})


@pytest.mark.django_db
def test_ten_thousand_idle_connections_cost_ten_queries(django_assert_num_queries: Any) -> None:
    user: Any = member_create("many", tenant_slug="acme")
    ApiToken.objects.bulk_create(
        ApiToken(user=user, name=f"t{i}", prefix="mcp_x", digest=f"{i:064x}") for i in range(10_000)
    )
    ids = list(ApiToken.objects.values_list("pk", flat=True))
    assert selectors.ACCESS_CHECK_CHUNK == 1000
    with django_assert_num_queries(10):
        states = access_states(token_ids=ids, user_ids=[])
    assert len(states.by_token) == 10_000
    assert all(state.failure is None for state in states.by_token.values())


# --- the guard -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_recheck_closes_what_lost_access_and_updates_tool_sets(
    runner: OperationRunner,
) -> None:
    issued = await sync_to_async(lambda: [member_token(n, tenant_slug="acme") for n in "ab"])()
    principals = [await sync_to_async(_principal)(i) for i in issued]
    cookie = await sync_to_async(make_principal)("acme", "cookie-user")
    outsider = await sync_to_async(make_principal)("beta", "bea")
    connections = [Connection(p, runner) for p in [*principals, principals[1], cookie, outsider]]
    for connection in connections:
        await connection.session.receive(INITIALIZE)
    guard = AccessGuard(
        connections=lambda: [c.session for c in connections], runner=runner, interval=3600
    )
    try:
        await guard.check()  # nothing changed: nothing happens
        assert [c.closed_with for c in connections] == [None] * 5
        assert all(not c.sent("notifications/tools/list_changed") for c in connections)

        await sync_to_async(
            lambda: ApiToken.objects.filter(pk=issued[0].token.pk).update(revoked_at=timezone.now())
        )()
        await sync_to_async(
            lambda: Tenant.objects.filter(slug="acme").update(enabled_tools=["add", "echo"])
        )()
        await guard.check()
        assert connections[0].closed_with == (4401, "token revoked")
        assert connections[0].session.is_closed
        for kept in connections[1:4]:
            assert kept.closed_with is None
            assert len(kept.sent("notifications/tools/list_changed")) == 1
            assert [t.name for t in kept.session.catalog.tools] == ["add", "echo"]
            assert kept.session.principal.enabled_tools == frozenset({"add", "echo"})
        assert connections[4].closed_with is None  # another tenant: untouched
        assert not connections[4].sent("notifications/tools/list_changed")

        await guard.check()  # a second round changes nothing more
        assert len(connections[1].sent("notifications/tools/list_changed")) == 1

        await sync_to_async(lambda: Tenant.objects.filter(slug="acme").update(is_active=False))()
        await guard.check()
        for closed in connections[1:4]:
            assert closed.closed_with == (4403, "account or tenant is inactive")
        assert connections[4].closed_with is None
    finally:
        await sync_to_async(close_database_connections)()


@pytest.mark.django_db(transaction=True)
async def test_new_limits_reach_open_connections_and_their_message_buckets(
    runner: OperationRunner, settings: Any
) -> None:
    settings.MCP_MESSAGE_BURST_PER_TENANT = 2
    issued = await sync_to_async(lambda: [member_token(n, tenant_slug="acme") for n in "ab"])()
    principals = [await sync_to_async(_principal)(i) for i in issued]
    outsider = await sync_to_async(make_principal)("beta", "bea")
    admission = ConnectionAdmission()
    allowances = [admission.admit(p) for p in [*principals, outsider]]
    assert all(isinstance(a, MessageAllowance) for a in allowances)
    connections = [
        Connection(p, runner, a)  # type: ignore[arg-type]
        for p, a in zip([*principals, outsider], allowances, strict=True)
    ]
    for connection in connections:
        await connection.session.receive(INITIALIZE)
    guard = AccessGuard(
        connections=lambda: [c.session for c in connections], runner=runner, interval=3600
    )
    before = principals[0].limits
    try:
        await guard.check()  # nothing changed: nothing happens
        assert all(c.session.principal.limits == before for c in connections)

        await sync_to_async(
            lambda: Tenant.objects.filter(slug="acme").update(
                limit_in_flight_per_connection=1, limit_message_rate=0.001
            )
        )()
        await guard.check()
        for kept in connections[:2]:
            limits = kept.session.principal.limits
            assert (limits.in_flight_per_connection, limits.message_rate_per_tenant) == (1, 0.001)
            assert kept.closed_with is None
            assert not kept.sent("notifications/tools/list_changed")  # the tools did not change
        assert connections[2].session.principal.limits == outsider.limits
        # The tenant's shared bucket took the new rate in place: once its burst is spent, the
        # next message of either connection waits for a refill at 0.001 per second.
        shared = [a for a in allowances[:2] if isinstance(a, MessageAllowance)]
        assert shared[0].take() is None and shared[1].take() is None
        refusal = shared[0].take()
        assert refusal is not None and refusal.limit == "messages per tenant"
        assert refusal.retry_after_ms > 60_000
        assert isinstance(allowances[2], MessageAllowance) and allowances[2].take() is None

        announced = replace(connections[0].session.principal.limits, in_flight_per_user=7)
        await guard.handle(
            TenantChanged(
                tenant_id=principals[0].tenant_id,
                enabled_tools=None,
                disabled_tools=frozenset(),
                limits=announced,
            )
        )
        assert [c.session.principal.limits for c in connections[:2]] == [announced] * 2
        assert connections[2].session.principal.limits == outsider.limits
    finally:
        await sync_to_async(close_database_connections)()


@pytest.mark.django_db(transaction=True)
async def test_an_announcement_closes_the_matching_connections_at_once(
    runner: OperationRunner,
) -> None:
    first, second = await sync_to_async(
        lambda: [member_token(n, tenant_slug="acme") for n in "ab"]
    )()
    principals = [await sync_to_async(_principal)(i) for i in (first, second)]
    connections = [Connection(p, runner) for p in principals]
    for connection in connections:
        await connection.session.receive(INITIALIZE)
    guard = AccessGuard(
        connections=lambda: [c.session for c in connections], runner=runner, interval=3600
    )
    message = AccessRevoked(
        kind="user_id",
        ids=[principals[0].user_id],
        status=403,
        reason="account or tenant is inactive",
    )
    await guard.handle(message)
    assert connections[0].closed_with == (4403, "account or tenant is inactive")
    assert connections[1].closed_with is None
    await guard.handle(
        TenantChanged(
            tenant_id=principals[1].tenant_id,
            enabled_tools=frozenset({"multiply"}),
            disabled_tools=frozenset(),
            limits=principals[1].limits,
        )
    )
    assert [t.name for t in connections[1].session.catalog.tools] == ["multiply"]
    assert len(connections[1].sent("notifications/tools/list_changed")) == 1
    await guard.handle(
        TenantChanged(
            tenant_id=principals[1].tenant_id,
            enabled_tools=None,
            disabled_tools=frozenset({"echo", "sleep"}),
            limits=principals[1].limits,
        )
    )
    names = [t.name for t in connections[1].session.catalog.tools]
    assert "echo" not in names and "sleep" not in names and "add" in names
    assert connections[1].session.principal.disabled_tools == frozenset({"echo", "sleep"})
    assert len(connections[1].sent("notifications/tools/list_changed")) == 2
    # A malformed message changes nothing.
    await guard.handle(decode_message({"type": "access.revoked", "kind": "username", "ids": ["b"]}))
    assert connections[1].closed_with is None


@pytest.mark.django_db(transaction=True)
async def test_announcements_and_the_recheck_forget_cached_lookups_first(
    runner: OperationRunner,
) -> None:
    issued = await sync_to_async(
        lambda: (
            [member_token(n, tenant_slug=t) for n, t in (("a", "acme"), ("b", "acme"))]
            + [member_token("c", tenant_slug="beta"), member_token("d", tenant_slug="beta")]
        )
    )()
    principals: list[Principal] = []
    for token in issued:  # looked up as a handshake does, so kept
        outcome = await principal_for_token_shared(token.raw)
        assert isinstance(outcome, Principal)
        principals.append(outcome)
    cache = token_cache()

    def kept() -> list[str]:
        return [i.token.user.username for i in issued if cache.get(token_digest(i.raw))]

    assert kept() == ["a", "b", "c", "d"]
    last = Connection(principals[3], runner)
    await last.session.receive(INITIALIZE)
    guard = AccessGuard(connections=lambda: [last.session], runner=runner, interval=3600)
    try:
        await guard.handle(
            AccessRevoked(
                kind="token_id", ids=[issued[0].token.pk], status=401, reason="token revoked"
            )
        )
        assert kept() == ["b", "c", "d"]
        await guard.handle(
            TenantChanged(
                tenant_id=principals[1].tenant_id,
                enabled_tools=frozenset({"add"}),
                disabled_tools=frozenset(),
                limits=principals[1].limits,
            )
        )
        assert kept() == ["c", "d"]
        # A change nobody announced, caught by the re-check of an open connection.
        await sync_to_async(
            lambda: ApiToken.objects.filter(pk=issued[3].token.pk).update(revoked_at=timezone.now())
        )()
        await guard.check()
        assert last.closed_with == (4401, "token revoked")
        assert kept() == ["c"]
    finally:
        await sync_to_async(close_database_connections)()
