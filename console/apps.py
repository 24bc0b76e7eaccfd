"""The console app."""

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """A browser console served at `/` (templates and static files only, no models)."""

    name = "console"
    verbose_name = "Browser console"
