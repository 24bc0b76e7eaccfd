"""What clients see of the service's health: the probes, and a 503 with a reason (never a
500) for a request or handshake that meets a dependency that is down."""

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from accounts.selectors import AuthFailure
from accounts.ws_auth import refuse_websocket
from mcp_server.dependencies import (
    DATABASE_ERRORS,
    DATABASE_UNAVAILABLE,
    REDIS_ERRORS,
    REDIS_UNAVAILABLE,
    database_problem,
    layer_outage,
    redis_problem,
)

logger = logging.getLogger(__name__)

# Seconds a client refused for a dependency outage is told to wait before trying again.
RETRY_AFTER_SECONDS = 5


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers (whatever its dependencies do)."""
    return JsonResponse({"status": "ok"})


async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and, when configured, Redis answer; else 503 naming what is down."""
    checks: dict[str, str | None] = {"database": await database_problem()}
    if settings.REDIS_URL:
        checks["redis"] = await redis_problem()
    down = {name: problem for name, problem in checks.items() if problem is not None}
    body: dict[str, Any] = {"status": "ok" if not down else "unavailable"}
    body["checks"] = {name: problem or "ok" for name, problem in checks.items()}
    if not down:
        return JsonResponse(body)
    body["reason"] = "; ".join(f"{name}: {problem}" for name, problem in down.items())
    return _service_unavailable(body)


def unavailable(dependency: str, reason: str) -> JsonResponse:
    """A 503 naming the dependency that is down."""
    return _service_unavailable({"detail": reason, "dependency": dependency})


def _service_unavailable(body: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # Django logs every 5xx as an error with its traceback context; an outage is logged once
    # where it is seen (mcp_server.dependencies), and each refused request by the access log.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class DependencyFailureMiddleware(MiddlewareMixin):
    """A view that met an unreachable Redis (the throttle's cache) or database answers 503."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """503 with a reason for a dependency outage; anything else goes on as before."""
        if isinstance(exception, REDIS_ERRORS):
            dependency, reason = "redis", REDIS_UNAVAILABLE
        elif isinstance(exception, DATABASE_ERRORS):
            dependency, reason = "database", DATABASE_UNAVAILABLE
        else:
            return None
        logger.info(
            "%s %s: %s unavailable (%s)",
            request.method,
            request.path,
            dependency,
            type(exception).__name__,
        )
        return unavailable(dependency, reason)


class DependencyGate:
    """Refuses WebSocket handshakes with 503 and a reason while the channel layer is down."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Refuse while Redis is known to be down; pass everything else through."""
        if scope["type"] == "websocket" and layer_outage.is_down:
            await refuse_websocket(AuthFailure(503, REDIS_UNAVAILABLE), scope, receive, send)
            return
        await self.inner(scope, receive, send)
