"""Management commands for tenants, users and tokens."""

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiToken, Membership, Tenant
from accounts.principal import Principal
from accounts.selectors import principal_for_token
from accounts.tokens import token_digest
from tests.accounts.factories import member_create

pytestmark = pytest.mark.django_db

RAW_TOKEN = re.compile(r"mcp_[A-Za-z0-9_-]{20,}")


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- createtenant ------------------------------------------------------------------------


def test_createtenant() -> None:
    output = _run("createtenant", "acme", "--name", "Acme Corp")
    assert "acme" in output
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Corp"
    assert tenant.is_active

    _run("createtenant", "plain")
    assert Tenant.objects.get(slug="plain").name == "plain"


def test_createtenant_duplicate() -> None:
    _run("createtenant", "acme")
    with pytest.raises(CommandError, match="already exists"):
        _run("createtenant", "acme")
    assert Tenant.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize(
    "slug", ["x/../beta", "../beta", "a b", "beta/", ".", "..", "", "tenant.", "ü", "a" * 64]
)
def test_createtenant_refuses_what_is_not_a_slug(slug: str) -> None:
    # "x/../beta" was accepted, and that tenant then read and wrote beta's data directory.
    with pytest.raises(CommandError, match="invalid tenant"):
        _run("createtenant", slug)
    assert not Tenant.objects.exists()


def test_createtenant_accepts_letters_digits_dashes_and_underscores() -> None:
    _run("createtenant", "Team_7-blue")
    _run("createtenant", "a" * 63)
    assert Tenant.objects.count() == 2


# --- createuser --------------------------------------------------------------------------


def test_createuser_member_and_admin() -> None:
    _run("createtenant", "acme")
    output = _run("createuser", "alice", "--tenant", "acme", "--email", "a@example.com")
    assert "alice" in output
    assert "member" in output
    alice = get_user_model().objects.get(username="alice")
    assert alice.email == "a@example.com"
    assert Membership.objects.get(user=alice).role == Membership.Role.MEMBER
    assert not alice.has_usable_password()

    output = _run("createuser", "bob", "--tenant", "acme", "--tenant-admin")
    assert "admin" in output
    membership = Membership.objects.get(user__username="bob")
    assert membership.role == Membership.Role.ADMIN
    assert membership.tenant.slug == "acme"


def test_createuser_password_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    _run("createtenant", "acme")
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple\n"))
    _run("createuser", "carol", "--tenant", "acme", "--password-stdin")
    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password("correct horse battery staple")


def test_createuser_errors() -> None:
    with pytest.raises(CommandError, match="does not exist"):
        _run("createuser", "alice", "--tenant", "missing")
    assert not get_user_model().objects.filter(username="alice").exists()

    _run("createtenant", "acme")
    _run("createuser", "alice", "--tenant", "acme")
    with pytest.raises(CommandError, match="already exists"):
        _run("createuser", "alice", "--tenant", "acme")


def test_createuser_requires_a_tenant() -> None:
    with pytest.raises(CommandError):
        _run("createuser", "alice")


# --- createtoken -------------------------------------------------------------------------


def test_createtoken_prints_the_raw_token_alone_on_the_last_line() -> None:
    member_create("alice", tenant_slug="acme")
    output = _run("createtoken", "alice")
    assert output.endswith("\n")
    last = output.rstrip("\n").splitlines()[-1]
    assert RAW_TOKEN.fullmatch(last), repr(last)
    # Printed once: the raw value is only on that line.
    assert output.count(last) == 1

    principal = principal_for_token(last)
    assert isinstance(principal, Principal)
    assert principal.username == "alice"
    token = ApiToken.objects.get(digest=token_digest(last))
    assert token.name == "default"
    assert token.expires_at is None
    assert "never" in output


def test_createtoken_name_and_expiry() -> None:
    member_create("alice", tenant_slug="acme")
    output = _run("createtoken", "alice", "--name", "laptop", "--expires-in-days", "7")
    raw = output.rstrip("\n").splitlines()[-1]
    token = ApiToken.objects.get(digest=token_digest(raw))
    assert token.name == "laptop"
    assert token.expires_at is not None
    remaining = token.expires_at - timezone.now()
    assert timedelta(days=7) - timedelta(minutes=1) < remaining <= timedelta(days=7)
    assert token.expires_at.isoformat() in output
    assert "laptop" in output


def test_createtoken_errors() -> None:
    with pytest.raises(CommandError, match="does not exist"):
        _run("createtoken", "nobody")
    member_create("alice", tenant_slug="acme")
    for days in ("0", "-1"):
        with pytest.raises(CommandError):
            _run("createtoken", "alice", "--expires-in-days", days)
    with pytest.raises(CommandError):
        _run("createtoken", "alice", "--expires-in-days", "soon")
    # Past the last representable date: a clear error, not an OverflowError traceback.
    for days in ("3000000", "1000000000"):
        with pytest.raises(CommandError, match="too large"):
            _run("createtoken", "alice", "--expires-in-days", days)
    assert ApiToken.objects.count() == 0


# --- bootstrap_demo ----------------------------------------------------------------------


def test_bootstrap_demo_prints_a_token_the_first_time_only() -> None:
    first = _run("bootstrap_demo")
    tokens = set(RAW_TOKEN.findall(first))
    assert len(tokens) == 1
    (raw,) = tokens
    principal = principal_for_token(raw)
    assert isinstance(principal, Principal)
    assert principal.tenant_slug == "demo"
    assert principal.username == "demo"
    assert principal.is_tenant_admin

    second = _run("bootstrap_demo")
    assert RAW_TOKEN.search(second) is None
    assert "createtoken" in second
    assert ApiToken.objects.count() == 1
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert get_user_model().objects.filter(username="demo").count() == 1
    # The first token still works.
    assert isinstance(principal_for_token(raw), Principal)


def test_bootstrap_demo_completes_a_partial_setup() -> None:
    _run("createtenant", "demo")
    first = _run("bootstrap_demo")
    assert len(set(RAW_TOKEN.findall(first))) == 1
    assert Membership.objects.get(user__username="demo").tenant.slug == "demo"
