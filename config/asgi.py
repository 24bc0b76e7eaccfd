"""ASGI entry point: HTTP to Django (but /mcp to the Streamable HTTP endpoint), WebSocket
through the dependency gate and authentication to the MCP consumer, all inside the lifespan
that builds and starts the process's runtime."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from accounts.ws_auth import WebSocketAuthMiddleware  # noqa: E402
from mcp_server.admission import ConnectionAdmissionMiddleware  # noqa: E402
from mcp_server.health import DependencyGate  # noqa: E402
from mcp_server.http_transport.app import StreamableHttpApp  # noqa: E402
from mcp_server.http_transport.routing import McpPathRouter  # noqa: E402
from mcp_server.lifespan import RuntimeLifespan  # noqa: E402
from mcp_server.routing import WebSocketPathRouter  # noqa: E402

# The application without a runtime: tests wrap it in a RuntimeLifespan of their own.
router = ProtocolTypeRouter(
    {
        "http": McpPathRouter(mcp=StreamableHttpApp(), other=django_asgi_app),
        "websocket": DependencyGate(
            WebSocketAuthMiddleware(ConnectionAdmissionMiddleware(WebSocketPathRouter()))
        ),
    }
)
application = RuntimeLifespan(router)
