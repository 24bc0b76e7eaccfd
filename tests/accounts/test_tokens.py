"""Tokens: only a digest is stored, resolving one into a Principal, recording use sparingly."""

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from pytest_django.fixtures import Settings

from accounts.models import ApiToken, Membership, Tenant
from accounts.principal import Principal
from accounts.selectors import (
    EXPIRED_TOKEN,
    INACTIVE_ACCOUNT,
    INVALID_TOKEN,
    NO_TENANT,
    REVOKED_TOKEN,
    principal_for_token,
    principal_for_user,
)
from accounts.services import (
    AccountError,
    IssuedToken,
    tenant_create,
    token_create,
    token_create_for_username,
    token_revoke,
    user_create,
)
from accounts.tokens import TOKEN_PREFIX, token_digest, token_display_prefix, token_generate
from tests.accounts.factories import member_create, member_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued() -> IssuedToken:
    return member_token("alice", tenant_slug="acme")


def _reload(issued: IssuedToken) -> ApiToken:
    return ApiToken.objects.get(pk=issued.token.pk)


# --- raw tokens --------------------------------------------------------------------------


def test_generated_tokens() -> None:
    tokens = {token_generate() for _ in range(50)}
    assert len(tokens) == 50
    for raw in tokens:
        assert raw.startswith(TOKEN_PREFIX)
        assert re.fullmatch(r"mcp_[A-Za-z0-9_-]{43}", raw)


def test_digest_and_display_prefix() -> None:
    raw = "mcp_" + "a" * 43
    assert token_digest(raw) == hashlib.sha256(raw.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", token_digest(raw))
    assert token_display_prefix(raw) == raw[:12]


# --- storage -----------------------------------------------------------------------------


def test_only_the_digest_is_stored(issued: IssuedToken) -> None:
    row = ApiToken.objects.filter(pk=issued.token.pk).values().get()
    assert row["digest"] == token_digest(issued.raw)
    assert row["prefix"] == issued.raw[:12]
    for column, value in row.items():
        assert issued.raw not in str(value), f"raw token stored in {column}"
    assert issued.raw not in str(issued.token)
    assert issued.raw not in repr(issued.token)


def test_raw_token_appears_nowhere_in_the_database(issued: IssuedToken) -> None:
    dump = io.StringIO()
    call_command("dumpdata", "accounts", "auth", "sessions", stdout=dump)
    assert issued.token.digest in dump.getvalue()
    assert issued.raw not in dump.getvalue()
    # Nor any long part of it (the display prefix is meant to be visible).
    assert issued.raw[12:] not in dump.getvalue()


def test_token_create_defaults(issued: IssuedToken) -> None:
    token = issued.token
    assert token.name == "alice-token"
    assert token.expires_at is None
    assert token.revoked_at is None
    assert token.last_used_at is None
    assert not token.is_revoked
    assert not token.is_expired()


def test_token_expiry_model_helpers(issued: IssuedToken) -> None:
    token = issued.token
    now = timezone.now()
    token.expires_at = now
    assert token.is_expired(now)
    assert not token.is_expired(now - timedelta(seconds=1))


# --- principal_for_token -----------------------------------------------------------------


def test_valid_token_gives_a_principal(issued: IssuedToken) -> None:
    principal = principal_for_token(issued.raw)
    user = issued.token.user
    assert principal == Principal(
        user_id=user.pk,
        username="alice",
        tenant_id=Tenant.objects.get(slug="acme").pk,
        tenant_slug="acme",
        is_tenant_admin=False,
        enabled_tools=None,
        token_id=issued.token.pk,
    )


def test_tenant_admin_and_enabled_tools() -> None:
    issued = member_token("boss", tenant_slug="corp", tenant_admin=True, enabled_tools=["add"])
    principal = principal_for_token(issued.raw)
    assert isinstance(principal, Principal)
    assert principal.is_tenant_admin is True
    assert principal.enabled_tools == frozenset({"add"})


def test_every_tool_but_the_disabled_ones() -> None:
    issued = member_token("cleo", tenant_slug="most")
    Tenant.objects.filter(slug="most").update(disabled_tools=["sleep", "echo"])
    principal = principal_for_token(issued.raw)
    assert isinstance(principal, Principal)
    assert (principal.enabled_tools, principal.disabled_tools) == (
        None,
        frozenset({"sleep", "echo"}),
    )


def test_a_chosen_set_ignores_the_disabled_tools() -> None:
    issued = member_token("dana", tenant_slug="few", enabled_tools=["add"])
    Tenant.objects.filter(slug="few").update(disabled_tools=["add"])
    principal = principal_for_token(issued.raw)
    assert isinstance(principal, Principal)
    assert (principal.enabled_tools, principal.disabled_tools) == (frozenset({"add"}), frozenset())


def test_empty_enabled_tools_means_every_tool() -> None:
    issued = member_token("bob", tenant_slug="open", enabled_tools=[])
    principal = principal_for_token(issued.raw)
    assert isinstance(principal, Principal)
    assert principal.enabled_tools is None


@pytest.mark.usefixtures("issued")
def test_unknown_token() -> None:
    assert principal_for_token("mcp_" + "z" * 43) == INVALID_TOKEN
    assert INVALID_TOKEN.status == 401


@pytest.mark.usefixtures("issued")
@pytest.mark.parametrize("raw", ["", "token", "Bearer mcp_x", "MCP_abc", "mcp_" + "a" * 300])
def test_malformed_token_costs_no_query(
    raw: str, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    with django_assert_num_queries(0):
        assert principal_for_token(raw) == INVALID_TOKEN


def test_token_of_another_length_or_case_is_unknown(issued: IssuedToken) -> None:
    assert principal_for_token(issued.raw + "x") == INVALID_TOKEN
    assert principal_for_token(issued.raw[:-1]) == INVALID_TOKEN
    assert principal_for_token(issued.raw.swapcase().replace("MCP_", "mcp_", 1)) == INVALID_TOKEN


def test_revoked_token(issued: IssuedToken) -> None:
    token_revoke(token=issued.token)
    assert principal_for_token(issued.raw) == REVOKED_TOKEN
    assert REVOKED_TOKEN.status == 401


def test_expired_token() -> None:
    expired = member_token("old", expires_at=timezone.now() - timedelta(seconds=1))
    assert principal_for_token(expired.raw) == EXPIRED_TOKEN
    assert EXPIRED_TOKEN.status == 401
    future = token_create(user=expired.token.user, expires_at=timezone.now() + timedelta(days=1))
    assert isinstance(principal_for_token(future.raw), Principal)


def test_inactive_user(issued: IssuedToken) -> None:
    get_user_model().objects.filter(pk=issued.token.user_id).update(is_active=False)
    assert principal_for_token(issued.raw) == INACTIVE_ACCOUNT
    assert INACTIVE_ACCOUNT.status == 403


def test_inactive_tenant(issued: IssuedToken) -> None:
    Tenant.objects.filter(slug="acme").update(is_active=False)
    assert principal_for_token(issued.raw) == INACTIVE_ACCOUNT


def test_user_without_membership() -> None:
    user = member_create("loner", tenant_slug="solo")
    Membership.objects.filter(user_id=user.pk).delete()
    raw = token_create(user=user).raw
    assert principal_for_token(raw) == NO_TENANT
    assert NO_TENANT.status == 403


@pytest.mark.parametrize("failure", ["revoked", "expired", "inactive_user", "inactive_tenant"])
def test_failed_use_is_not_recorded(issued: IssuedToken, failure: str) -> None:
    if failure == "revoked":
        token_revoke(token=issued.token)
    elif failure == "expired":
        ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now())
    elif failure == "inactive_user":
        get_user_model().objects.filter(pk=issued.token.user_id).update(is_active=False)
    else:
        Tenant.objects.filter(slug="acme").update(is_active=False)
    assert not isinstance(principal_for_token(issued.raw), Principal)
    assert _reload(issued).last_used_at is None


# --- last_used_at ------------------------------------------------------------------------


def _updates(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if "UPDATE" in query["sql"]]


def test_first_use_is_recorded_in_one_lookup_and_one_write(
    issued: IssuedToken, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    before = timezone.now()
    with django_assert_num_queries(2):
        assert isinstance(principal_for_token(issued.raw), Principal)
    used = _reload(issued).last_used_at
    assert used is not None
    assert before <= used <= timezone.now()


def test_use_within_the_interval_is_not_rewritten(
    issued: IssuedToken, settings: Settings, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    settings.MCP_TOKEN_TOUCH_INTERVAL = 60
    principal_for_token(issued.raw)
    first = _reload(issued).last_used_at
    assert first is not None

    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert isinstance(principal_for_token(issued.raw), Principal)
    assert len(queries.captured_queries) == 5  # one lookup each, nothing else
    assert _updates(queries) == []
    assert _reload(issued).last_used_at == first


def test_use_after_the_interval_is_recorded_again(issued: IssuedToken, settings: Settings) -> None:
    settings.MCP_TOKEN_TOUCH_INTERVAL = 60
    long_ago = timezone.now() - timedelta(seconds=61)
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=long_ago)

    with CaptureQueriesContext(connection) as queries:
        principal_for_token(issued.raw)
    assert len(_updates(queries)) == 1
    refreshed = _reload(issued).last_used_at
    assert refreshed is not None
    assert refreshed > long_ago + timedelta(seconds=60)


def test_recent_use_before_the_interval_ends(issued: IssuedToken, settings: Settings) -> None:
    settings.MCP_TOKEN_TOUCH_INTERVAL = 60
    recent = timezone.now() - timedelta(seconds=50)
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=recent)
    with CaptureQueriesContext(connection) as queries:
        principal_for_token(issued.raw)
    assert _updates(queries) == []
    assert _reload(issued).last_used_at == recent


# --- revocation --------------------------------------------------------------------------


def test_token_revoke_is_idempotent(issued: IssuedToken) -> None:
    revoked = token_revoke(token=issued.token)
    first = revoked.revoked_at
    assert first is not None
    assert _reload(issued).revoked_at == first

    again = token_revoke(token=_reload(issued))
    assert again.revoked_at == first
    assert _reload(issued).revoked_at == first


def test_revoking_one_token_leaves_the_others(issued: IssuedToken) -> None:
    other = token_create(user=issued.token.user, name="second")
    token_revoke(token=issued.token)
    assert principal_for_token(issued.raw) == REVOKED_TOKEN
    assert isinstance(principal_for_token(other.raw), Principal)


# --- principal_for_user (session cookie) -------------------------------------------------


def test_principal_for_user() -> None:
    user = member_create("web", tenant_slug="acme", tenant_admin=True)
    principal = principal_for_user(user)
    assert isinstance(principal, Principal)
    assert principal.token_id is None
    assert principal.is_tenant_admin is True
    assert principal.username == "web"


def test_principal_for_anonymous_and_inactive_users() -> None:
    anonymous = principal_for_user(AnonymousUser())
    assert not isinstance(anonymous, Principal)
    assert anonymous.status == 401
    user = member_create("gone", tenant_slug="acme")
    user.is_active = False
    user.save()
    assert principal_for_user(user) == INACTIVE_ACCOUNT


# --- services ----------------------------------------------------------------------------


def test_tenant_create() -> None:
    tenant = tenant_create(slug="blue")
    assert tenant.name == "blue"
    assert tenant.is_active
    assert tenant.enabled_tools is None
    assert tenant_create(slug="red", name="Red team").name == "Red team"
    with pytest.raises(AccountError, match="already exists"):
        tenant_create(slug="blue")


def test_user_create_errors_leave_nothing_behind() -> None:
    user_model = get_user_model()
    with pytest.raises(AccountError, match="does not exist"):
        user_create(username="nobody", tenant_slug="missing")
    assert not user_model.objects.filter(username="nobody").exists()

    member_create("taken", tenant_slug="acme")
    with pytest.raises(AccountError, match="already exists"):
        user_create(username="taken", tenant_slug="acme")
    assert user_model.objects.filter(username="taken").count() == 1


def test_user_create_roles() -> None:
    member = user_create(username="m", tenant_slug=tenant_create(slug="t").slug)
    admin = user_create(username="a", tenant_slug="t", tenant_admin=True)
    assert Membership.objects.get(user_id=member.pk).role == Membership.Role.MEMBER
    assert Membership.objects.get(user_id=admin.pk).role == Membership.Role.ADMIN
    assert Membership.objects.get(user_id=admin.pk).is_tenant_admin
    assert not member.has_usable_password()


def test_token_create_for_username() -> None:
    member_create("alice", tenant_slug="acme")
    issued = token_create_for_username(username="alice", name="ci", expires_in_days=2)
    assert issued.token.name == "ci"
    assert issued.token.expires_at is not None
    remaining = issued.token.expires_at - timezone.now()
    assert timedelta(days=2) - timedelta(minutes=1) < remaining <= timedelta(days=2)
    assert token_create_for_username(username="alice").token.expires_at is None
    with pytest.raises(AccountError, match="does not exist"):
        token_create_for_username(username="nobody")
    for days in (0, -3):
        with pytest.raises(AccountError):
            token_create_for_username(username="alice", expires_in_days=days)
    with pytest.raises(AccountError, match="too large"):
        token_create_for_username(username="alice", expires_in_days=10**7)
