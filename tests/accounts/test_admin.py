"""The admin for tenants, memberships, users and tokens."""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken, Tenant
from accounts.principal import Principal
from accounts.selectors import principal_for_token
from accounts.services import IssuedToken, token_create, token_revoke
from accounts.tokens import token_digest
from mcp_server.tools.registry import registry
from tests.accounts.factories import member_token

pytestmark = pytest.mark.django_db

RAW_TOKEN = re.compile(r"mcp_[A-Za-z0-9_-]{20,}")

PAGES = [
    "admin:accounts_tenant_changelist",
    "admin:accounts_tenant_add",
    "admin:accounts_membership_changelist",
    "admin:accounts_membership_add",
    "admin:accounts_apitoken_changelist",
    "admin:accounts_apitoken_add",
    "admin:auth_user_changelist",
    "admin:auth_user_add",
]


@pytest.fixture
def issued() -> IssuedToken:
    # Rows on every changelist: a tenant, a member, a token; the admin user has no tenant.
    return member_token("alice", tenant_slug="acme", tenant_admin=True)


@pytest.mark.usefixtures("issued")
@pytest.mark.parametrize("page", PAGES)
def test_pages_render_for_staff(staff_client: Client, page: str) -> None:
    response = staff_client.get(reverse(page))
    assert response.status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_pages_redirect_anonymous_to_login(client: Client, page: str) -> None:
    url = reverse(page)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert "next=" in response["Location"]


def test_changelists_show_the_rows(staff_client: Client, issued: IssuedToken) -> None:
    tokens = staff_client.get(reverse("admin:accounts_apitoken_changelist")).content.decode()
    assert issued.token.prefix in tokens
    assert issued.raw not in tokens
    users = staff_client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "alice" in users
    assert "acme" in users  # the tenant column


def test_change_pages_render(staff_client: Client, issued: IssuedToken) -> None:
    user = issued.token.user
    urls = [
        reverse("admin:accounts_apitoken_change", args=[issued.token.pk]),
        reverse("admin:auth_user_change", args=[user.pk]),
        reverse("admin:accounts_membership_change", args=[user.membership.pk]),
        reverse("admin:accounts_tenant_change", args=[user.membership.tenant.pk]),
    ]
    for url in urls:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert issued.raw not in response.content.decode()
    token_page = staff_client.get(urls[0]).content.decode()
    assert issued.token.digest not in token_page


def test_token_added_in_the_admin_is_shown_once(staff_client: Client, issued: IssuedToken) -> None:
    owner = issued.token.user
    response = staff_client.post(
        reverse("admin:accounts_apitoken_add"),
        {"user": owner.pk, "name": "from-admin", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    # Shown on the response itself, not through messages (a cookie or the session).
    assert list(get_messages(response.wsgi_request)) == []
    assert "messages" not in response.cookies
    assert "no-store" in response["Cache-Control"]
    shown = re.findall(r'id="raw-token"[^>]*>([^<]+)<', response.content.decode())
    assert len(shown) == 1
    (raw,) = shown
    assert RAW_TOKEN.fullmatch(raw)

    token = ApiToken.objects.get(name="from-admin")
    assert token.user_id == owner.pk
    assert token.digest == token_digest(raw)
    assert token.prefix == raw[:12]
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert all(raw not in str(value) for value in row.values())
    principal = principal_for_token(raw)
    assert isinstance(principal, Principal)
    assert principal.token_id == token.pk

    # Never again: not on the next page, not on the token's own page.
    later = staff_client.get(reverse("admin:accounts_apitoken_changelist"))
    assert raw not in later.content.decode()
    assert list(get_messages(later.wsgi_request)) == []
    page = staff_client.get(reverse("admin:accounts_apitoken_change", args=[token.pk]))
    assert raw not in page.content.decode()


def test_editing_a_token_keeps_its_digest(staff_client: Client, issued: IssuedToken) -> None:
    token = issued.token
    response = staff_client.post(
        reverse("admin:accounts_apitoken_change", args=[token.pk]),
        {"user": token.user_id, "name": "renamed", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.name == "renamed"
    assert token.digest == token_digest(issued.raw)
    assert isinstance(principal_for_token(issued.raw), Principal)
    shown = " ".join(str(message) for message in response.context["messages"])
    assert RAW_TOKEN.search(shown) is None


def test_revoke_action(staff_client: Client, issued: IssuedToken) -> None:
    second = token_create(user=issued.token.user, name="second")
    earlier = token_create(user=issued.token.user, name="earlier")
    token_revoke(token=earlier.token)
    earlier.token.refresh_from_db()
    first_revoked_at = earlier.token.revoked_at
    untouched = token_create(user=issued.token.user, name="untouched")

    response = staff_client.post(
        reverse("admin:accounts_apitoken_changelist"),
        {
            "action": "revoke_tokens",
            "_selected_action": [issued.token.pk, second.token.pk, earlier.token.pk],
        },
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert "Revoked 2 token(s)." in shown

    for revoked in (issued, second):
        assert principal_for_token(revoked.raw) is not None
        assert not isinstance(principal_for_token(revoked.raw), Principal)
        assert ApiToken.objects.get(pk=revoked.token.pk).revoked_at is not None
    assert ApiToken.objects.get(pk=earlier.token.pk).revoked_at == first_revoked_at
    assert isinstance(principal_for_token(untouched.raw), Principal)


@pytest.mark.parametrize("slug", ["x/../beta", "a b", ".."])
def test_admin_refuses_a_tenant_slug_that_is_not_a_slug(staff_client: Client, slug: str) -> None:
    response = staff_client.post(
        reverse("admin:accounts_tenant_add"), {"slug": slug, "name": "x", "is_active": "on"}
    )
    assert response.status_code == 200  # the form again, with its error
    assert "slug" in response.context["adminform"].form.errors
    assert not Tenant.objects.filter(slug=slug).exists()


def test_tenant_page_has_a_limits_section_whose_help_shows_the_defaults(
    staff_client: Client, issued: IssuedToken, settings: object
) -> None:
    from accounts.models import Tenant

    settings.MCP_MAX_CONNECTIONS_PER_USER = 17  # type: ignore[attr-defined]
    tenant = Tenant.objects.get(slug="acme")
    page = staff_client.get(reverse("admin:accounts_tenant_change", args=[tenant.pk]))
    html = page.content.decode()
    assert "<h2" in html and ">Limits<" in html
    assert 'name="limit_connections_per_user"' in html
    assert "Open connections per user, per process. Empty = default (17)." in html

    form = {
        "slug": "acme",
        "name": "",
        "is_active": "on",
        "tool_mode": "every",
        "tools": [tool.name for tool in registry],
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "limit_connections_per_user": "3",
    }
    saved = staff_client.post(reverse("admin:accounts_tenant_change", args=[tenant.pk]), form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    tenant.refresh_from_db()
    assert tenant.limit_connections_per_user == 3
    assert tenant.limit_connections is None  # empty stays empty: the default applies


def _tenant_form(**changes: object) -> dict[str, object]:
    return {
        "slug": "acme",
        "is_active": "on",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        **changes,
    }


def test_tenant_page_shows_the_tool_set_as_checkboxes(
    staff_client: Client, issued: IssuedToken
) -> None:
    tenant = Tenant.objects.get(slug="acme")
    tenant.enabled_tools, tenant.disabled_tools = None, ["echo", "retired_tool"]
    tenant.save()
    page = staff_client.get(reverse("admin:accounts_tenant_change", args=[tenant.pk]))
    form = page.context["adminform"].form
    assert form.initial["tool_mode"] == "every"
    assert "echo" not in form.initial["tools"] and "add" in form.initial["tools"]
    assert "text_stats" in form.initial["tools"]  # a tool from an app, like any other
    html = page.content.decode()
    assert 'type="checkbox" name="tools" value="add"' in html
    assert "retired_tool (not installed)" in html


def test_only_chosen_tools_with_none_checked_is_refused_and_changes_nothing(
    staff_client: Client, issued: IssuedToken
) -> None:
    tenant = Tenant.objects.get(slug="acme")
    url = reverse("admin:accounts_tenant_change", args=[tenant.pk])
    refused = staff_client.post(url, _tenant_form(name="Renamed", tool_mode="chosen"))
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert errors["tools"] == [
        "Check at least one tool, or choose every tool "
        "(to stop a tenant altogether, deactivate it)."
    ]
    tenant.refresh_from_db()
    assert tenant.name != "Renamed"
    assert (tenant.enabled_tools, tenant.disabled_tools) == (None, [])


def test_a_stored_name_no_longer_installed_stays_disabled(
    staff_client: Client, issued: IssuedToken
) -> None:
    tenant = Tenant.objects.get(slug="acme")
    tenant.disabled_tools = ["retired_tool"]
    tenant.save()
    url = reverse("admin:accounts_tenant_change", args=[tenant.pk])
    every_but_sleep = [tool.name for tool in registry if tool.name != "sleep"]
    saved = staff_client.post(url, _tenant_form(tool_mode="every", tools=every_but_sleep))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    tenant.refresh_from_db()
    assert (tenant.enabled_tools, tenant.disabled_tools) == (None, ["retired_tool", "sleep"])
