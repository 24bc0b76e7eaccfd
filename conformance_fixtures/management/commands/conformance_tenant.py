"""`manage.py conformance_tenant`: the tenant the conformance suite runs as, with the fixtures."""

from typing import Any

from django.core.management.base import BaseCommand

from accounts.models import Tenant
from accounts.services import tenant_create, tenant_update
from conformance_fixtures.apps import TENANT_SLUG
from mcp_server.tools import registry

FIXTURE_MODULES = ("conformance_fixtures.mcp_tools", "conformance_fixtures.input_required")


def fixture_tool_names() -> list[str]:
    """The names of the conformance fixture tools, sorted."""
    return sorted(tool.name for tool in registry if tool.module in FIXTURE_MODULES)


class Command(BaseCommand):
    """Create the conformance tenant (or bring it up to date) with exactly the fixtures."""

    help = (
        f"Create tenant {TENANT_SLUG!r} whose tool set is the conformance fixtures (opt-in "
        "tools no other tenant has); run again to update it. Serve it to callers without a "
        f"token with MCP_ANONYMOUS_TENANT={TENANT_SLUG}."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Create or update the tenant."""
        names = fixture_tool_names()
        tenant = Tenant.objects.filter(slug=TENANT_SLUG).first()
        if tenant is None:
            tenant = tenant_create(slug=TENANT_SLUG, name="MCP conformance suite")
        tenant.enabled_tools = names
        tenant.disabled_tools = []
        tenant_update(tenant=tenant, changed=["enabled_tools", "disabled_tools"])
        self.stdout.write(f"Tenant {TENANT_SLUG} has {len(names)} conformance fixture tools")
