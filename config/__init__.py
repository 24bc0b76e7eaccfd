"""Project configuration: settings, ASGI entry point, URL routes."""
