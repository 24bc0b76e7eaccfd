"""The console's tool list follows the tenant's tool set while connected: a tool taken away
leaves the list (and its open form) on `notifications/tools/list_changed`, without a reload."""

import secrets
from typing import TYPE_CHECKING

from tests.console.steps import UI_TIMEOUT_MS, choose_tool, log_in
from tests.e2e.support import Deployment, tenant_command, user_command

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_a_tool_taken_away_leaves_the_open_console(page: "Page", deployment: Deployment) -> None:
    slug = f"console-{secrets.token_hex(3)}"
    username, password = f"{slug}-user", secrets.token_urlsafe(16)
    deployment.run_together([tenant_command(slug), user_command(username, slug, password=password)])
    log_in(page, username, password)
    choose_tool(page, "text_stats")

    deployment.shell(
        "from accounts.models import Tenant; from accounts.services import tenant_update; "
        f"tenant = Tenant.objects.get(slug={slug!r}); tenant.disabled_tools = ['text_stats']; "
        "tenant_update(tenant=tenant, changed=['disabled_tools'])"
    )
    page.wait_for_selector(
        '#tool-list button[data-tool="text_stats"]', state="detached", timeout=UI_TIMEOUT_MS
    )
    page.wait_for_selector("#tool-form", state="hidden", timeout=UI_TIMEOUT_MS)
    assert page.locator('#tool-list button[data-tool="checksum_files"]').count() == 1
    assert page.locator("#run").is_disabled()
