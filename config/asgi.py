"""ASGI entry point: HTTP to Django, WebSocket through the dependency gate and authentication
to the MCP consumer, and the lifespan that starts the process's liveness duties."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.ws_auth import WebSocketAuthMiddleware  # noqa: E402
from mcp_server.admission import ConnectionAdmissionMiddleware  # noqa: E402
from mcp_server.health import DependencyGate  # noqa: E402
from mcp_server.lifespan import lifespan  # noqa: E402
from mcp_server.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": DependencyGate(
            WebSocketAuthMiddleware(ConnectionAdmissionMiddleware(URLRouter(websocket_urlpatterns)))
        ),
        "lifespan": lifespan,
    }
)
