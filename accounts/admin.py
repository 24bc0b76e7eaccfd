"""Admin for tenants, memberships and tokens; a token created here is shown once."""

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.limits import OVERRIDE_FIELDS, default_limits
from accounts.models import ApiToken, Membership, Tenant
from accounts.services import tenant_update, token_revoke
from accounts.tokens import token_digest, token_display_prefix, token_generate

_RAW_TOKEN_ATTRIBUTE = "_mcp_new_raw_token"


class MembershipInline(admin.StackedInline):
    """The user's tenant and role, edited on the user page."""

    model = Membership
    can_delete = False
    extra = 0
    max_num = 1


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Tenants, the tools they may use, and their overrides of the isolation limits."""

    list_display = ("slug", "name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("slug", "name")
    fieldsets = (
        (None, {"fields": ("slug", "name", "is_active", "enabled_tools", "created_at")}),
        (
            "Limits",
            {
                "fields": tuple(OVERRIDE_FIELDS),
                "description": "Per-process bounds for this tenant's callers. Empty keeps the "
                "server's default (shown under each field, from its settings); 0 switches a "
                "limit off. Changes apply to new connections and requests.",
            },
        ),
    )

    def get_form(
        self, request: HttpRequest, obj: Tenant | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """The form, each limit's help text saying what empty means here: the default."""
        form = super().get_form(request, obj, change=change, **kwargs)
        defaults = default_limits()
        for field, attribute in OVERRIDE_FIELDS.items():
            if field in form.base_fields:
                base = form.base_fields[field]
                default = getattr(defaults, attribute)
                shown = f"{default:g}" if isinstance(default, float) else str(default)
                base.help_text = f"{base.help_text} Empty = default ({shown})."
        return form

    def save_model(self, request: HttpRequest, obj: Tenant, form: ModelForm, change: bool) -> None:
        """Save through the service, so deactivation and tool changes reach open connections."""
        if change:
            tenant_update(tenant=obj, changed=form.changed_data)
        else:
            super().save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Which tenant each user belongs to."""

    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role", "tenant")
    search_fields = ("user__username", "tenant__slug")
    list_select_related = ("user", "tenant")
    raw_id_fields = ("user",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens: create (the raw value is shown once), inspect, revoke."""

    list_display = (
        "name",
        "prefix",
        "user",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    actions = ("revoke_tokens",)
    readonly_fields = ("prefix", "created_at", "revoked_at", "last_used_at")

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        """On creation only the owner, name and expiry are asked for."""
        if obj is None:
            return ["user", "name", "expires_at"]
        return ["user", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: ModelForm, change: bool
    ) -> None:
        """Generate the raw token on creation; `response_add` shows it once."""
        if not change:
            raw = token_generate()
            obj.prefix = token_display_prefix(raw)
            obj.digest = token_digest(raw)
            setattr(request, _RAW_TOKEN_ATTRIBUTE, raw)
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Show the raw token on the response page itself, never through messages storage.

        Messages travel in a cookie or the session, so the raw value would leave this one
        response (and, with session storage, reach the database).
        """
        raw = getattr(request, _RAW_TOKEN_ATTRIBUTE, None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "Token created",
            "opts": self.model._meta,
            "token": obj,
            "raw_token": raw,
            "changelist_url": reverse("admin:accounts_apitoken_changelist"),
        }
        response = TemplateResponse(request, "admin/accounts/apitoken/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        """Revoke every selected token that is not revoked yet."""
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            token_revoke(token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).")


User = get_user_model()


class TenantUserAdmin(UserAdmin):
    """The stock user admin with the tenant membership inline."""

    inlines = (MembershipInline,)
    list_display = ("username", "email", "is_active", "is_staff", "tenant")
    list_select_related = ("membership__tenant",)

    @admin.display(description="Tenant", ordering="membership__tenant__slug")
    def tenant(self, obj: Any) -> str:
        """The user's tenant slug."""
        membership = getattr(obj, "membership", None)
        return membership.tenant.slug if membership else "—"


admin.site.unregister(User)
admin.site.register(User, TenantUserAdmin)
