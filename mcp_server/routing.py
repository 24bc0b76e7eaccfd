"""WebSocket URL routes."""

from django.urls import path, re_path

from mcp_server.consumers import McpConsumer
from mcp_server.not_found import NotFoundConsumer

websocket_urlpatterns = [
    path("mcp", McpConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
