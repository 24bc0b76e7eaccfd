"""App configuration for the MCP service."""

from django.apps import AppConfig, apps


class McpServerConfig(AppConfig):
    """Loads the built-in tools, resources and prompts, and every app's `mcp_tools`, into
    their registries at start-up."""

    name = "mcp_server"
    verbose_name = "MCP service"

    def ready(self) -> None:
        """Import the built-in tool, resource and prompt modules, then each installed app's
        `mcp_tools` module (mcp_server/tools/discovery.py), so their decorators register
        them; check the operator's placement overrides against them; and act on access taken
        away (mcp_server/access.py)."""
        from mcp_server.access import connect_receivers
        from mcp_server.placement import overrides_from_settings
        from mcp_server.prompts import builtin as builtin_prompts  # noqa: F401
        from mcp_server.resources import data, runs  # noqa: F401
        from mcp_server.tools import builtin  # noqa: F401
        from mcp_server.tools.discovery import discover_tools

        discover_tools(apps.get_app_configs())
        # A bad MCP_TOOL_PLACEMENT stops every process at start, as a broken tool module does.
        overrides_from_settings()
        connect_receivers()
