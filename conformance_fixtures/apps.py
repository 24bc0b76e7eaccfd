"""App configuration of the conformance fixtures."""

from django.apps import AppConfig

# The tenant `make conformance` creates; the fixtures are opt-in tools only it names.
TENANT_SLUG = "conformance"


class ConformanceFixturesConfig(AppConfig):
    """The conformance suite's fixtures; mcp_server imports `conformance_fixtures.mcp_tools`
    at start-up when the app is installed (MCP_TOOL_APPS)."""

    name = "conformance_fixtures"
    verbose_name = "MCP conformance fixtures"

    def ready(self) -> None:
        """Register the fixture resources and prompts (tools come through `mcp_tools`)."""
        from conformance_fixtures import resources_and_prompts  # noqa: F401
