"""Server (d): django-mcpz 1.2.0 over Streamable HTTP at /mcp (its stateless mode for
2025-11-25 clients, JSON responses), a one-file Django 5.2 project under gunicorn (one
gthread worker: the package's view is synchronous, WSGI is its production setting); the same
`add` tool, no progress (the package has none), no auth, no middleware, no database.
GET /healthz: 200. Runs in the `django-mcpz` environment (clients/envs.py)."""

from __future__ import annotations

import argparse
from typing import Any

import django
import msgspec
from django.conf import settings
from django.http import HttpRequest, HttpResponse

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402 - after settings.configure
from django.urls import path  # noqa: E402
from django_mcpz.server import MCPServer, public  # noqa: E402
from gunicorn.app.base import BaseApplication  # noqa: E402

server = MCPServer(name="bench-mcpz", version="1.2.0", auth=public)


class AddArguments(msgspec.Struct):
    """The two addends."""

    a: float
    b: float


class Sum(msgspec.Struct):
    """The tool's structured result, like the service's `{"result": ...}`."""

    result: float


@server.tool(description="Add two numbers: a + b.")
def add(request: HttpRequest, arguments: AddArguments) -> Sum:
    """Add two numbers."""
    return Sum(result=arguments.a + arguments.b)


def healthz(request: HttpRequest) -> HttpResponse:
    """Readiness probe."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("mcp", server), path("healthz", healthz)]
application = get_wsgi_application()


class Gunicorn(BaseApplication):
    """gunicorn with options from the command line, serving `application`."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return application


def main() -> None:
    """Serve on --host/--port until interrupted."""
    parser = argparse.ArgumentParser(description="django-mcpz server for the benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": args.threads,
        "keepalive": 75,
        "accesslog": None,
        "loglevel": "warning",
    }
    Gunicorn(options).run()


if __name__ == "__main__":
    main()
