"""Admin for tenants, memberships and tokens; a token created here is shown once."""

from typing import Any, cast

from django import forms
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
from accounts.tool_sets import names_sorted

_RAW_TOKEN_ATTRIBUTE = "_mcp_new_raw_token"


class MembershipInline(admin.StackedInline):
    """The user's tenant and role, edited on the user page."""

    model = Membership
    can_delete = False
    extra = 0
    max_num = 1


class TenantForm(forms.ModelForm):
    """The tenant form, its tool set edited as a choice and checkboxes (not as JSON).

    "Every tool" stores the unchecked tools as `disabled_tools` (tools added to the server
    later are on); "only the checked tools" stores them as `enabled_tools` (tools added later
    stay off). Names stored but no longer installed are shown too, so none is lost unseen.
    """

    EVERY_TOOL = "every"
    CHOSEN = "chosen"
    tool_mode = forms.ChoiceField(
        label="Tool set",
        choices=[
            (EVERY_TOOL, "Every tool but the unchecked ones; tools added later are on"),
            (CHOSEN, "Only the checked tools; tools added later stay off"),
        ],
        widget=forms.RadioSelect,
        initial=EVERY_TOOL,
    )
    tools = forms.MultipleChoiceField(
        label="Tools",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Checked tools are enabled. A change reaches the tenant's open connections "
        "within seconds; calls of a tool taken away are refused from then on.",
    )

    class Meta:
        model = Tenant
        # The tool set's two fields are written by clean(), from `tool_mode` and `tools`.
        fields = ("slug", "name", "is_active", "created_at", *OVERRIDE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Offer every installed tool (and every stored name), checked as the tenant has them."""
        super().__init__(*args, **kwargs)
        # The registry is filled at start-up (mcp_server's AppConfig.ready), before any request.
        from mcp_server.tools.registry import registry

        installed = [tool.name for tool in registry]
        tenant = self.instance
        stored = set(tenant.enabled_tools or ()) | set(tenant.disabled_tools or ())
        missing = sorted(stored - set(installed))
        self._offered = [*installed, *missing]
        self._tool_field().choices = [(name, name) for name in installed] + [
            (name, f"{name} (not installed)") for name in missing
        ]
        if tenant.enabled_tools:
            self.initial.setdefault("tool_mode", self.CHOSEN)
            self.initial.setdefault("tools", list(tenant.enabled_tools))
        else:
            disabled = set(tenant.disabled_tools or ())
            self.initial.setdefault("tool_mode", self.EVERY_TOOL)
            self.initial.setdefault("tools", [n for n in installed if n not in disabled])

    def _tool_field(self) -> forms.MultipleChoiceField:
        return cast(forms.MultipleChoiceField, self.fields["tools"])

    def clean(self) -> dict[str, Any]:
        """Turn the choice and the checkboxes into the tenant's stored tool set."""
        cleaned = super().clean() or {}
        mode, checked = cleaned.get("tool_mode"), cleaned.get("tools") or []
        if mode == self.CHOSEN:
            if not checked:
                self.add_error(
                    "tools",
                    "Check at least one tool, or choose every tool "
                    "(to stop a tenant altogether, deactivate it).",
                )
            self.instance.enabled_tools = names_sorted(checked)
            self.instance.disabled_tools = []
        elif mode == self.EVERY_TOOL:
            self.instance.enabled_tools = None
            self.instance.disabled_tools = names_sorted(
                n for n in self._offered if n not in checked
            )
        return cleaned

    def changed_model_fields(self) -> list[str]:
        """The model fields this edit changed: the tool set's two count as one change."""
        changed = [name for name in self.changed_data if name not in ("tool_mode", "tools")]
        if {"tool_mode", "tools"} & set(self.changed_data):
            changed += ["enabled_tools", "disabled_tools"]
        return changed


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Tenants, the tools they may use, and their overrides of the isolation limits."""

    form = TenantForm
    list_display = ("slug", "name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("slug", "name")
    fieldsets = (
        (None, {"fields": ("slug", "name", "is_active", "created_at")}),
        ("Tools", {"fields": ("tool_mode", "tools")}),
        (
            "Limits",
            {
                "fields": tuple(OVERRIDE_FIELDS),
                "description": "Per-process bounds for this tenant's callers. Empty keeps the "
                "server's default (shown under each field, from its settings); 0 switches a "
                "limit off. Changes reach open connections within seconds (in-flight "
                "requests and message rates); connection caps apply to the next handshake.",
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
            assert isinstance(form, TenantForm)
            tenant_update(tenant=obj, changed=form.changed_model_fields())
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
