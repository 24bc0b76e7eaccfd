"""Tools from any installed Django app: its `mcp_tools` module, imported at start-up.

Django's `autodiscover_modules` would re-raise an app's import error as it is; this loop uses
the same building blocks (`module_has_submodule`, `import_module`) so that a broken module or a
clash of tool names stops start-up with an ImproperlyConfigured naming the app and the tool.
"""

from collections.abc import Iterable
from importlib import import_module

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import module_has_submodule

from mcp_server.tools.registry import DuplicateToolError

TOOL_MODULE = "mcp_tools"


def discover_tools(app_configs: Iterable[AppConfig]) -> list[str]:
    """Import each app's `mcp_tools` module, so its `@tool` functions register; the modules
    imported, in order. A module that fails to import, or a tool whose name is taken (by
    another app or a built-in), raises ImproperlyConfigured."""
    imported = []
    for app in app_configs:
        if app.module is None or not module_has_submodule(app.module, TOOL_MODULE):
            continue
        module = f"{app.name}.{TOOL_MODULE}"
        try:
            import_module(module)
        except DuplicateToolError as exc:
            raise ImproperlyConfigured(f"app {app.label!r} ({module}): {exc}") from exc
        except Exception as exc:
            raise ImproperlyConfigured(
                f"app {app.label!r}: its tool module {module} failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        imported.append(module)
    return imported
