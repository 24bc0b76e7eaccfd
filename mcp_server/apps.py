"""App configuration for the MCP service."""

from django.apps import AppConfig


class McpServerConfig(AppConfig):
    """Loads the built-in tools into the registry when Django starts."""

    name = "mcp_server"
    verbose_name = "MCP service"

    def ready(self) -> None:
        """Import the built-in tool modules so their decorators register them, and act on
        access taken away (mcp_server/access.py)."""
        from mcp_server.access import connect_receivers
        from mcp_server.tools import builtin  # noqa: F401

        connect_receivers()
