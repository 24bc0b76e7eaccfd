"""App configuration of the example tools."""

from django.apps import AppConfig


class ExampleToolsConfig(AppConfig):
    """Two example tools; mcp_server imports `example_tools.mcp_tools` at start-up."""

    name = "example_tools"
    verbose_name = "Example tools"
