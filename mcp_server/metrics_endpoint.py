"""`GET /metrics`: the Prometheus text format, for configured addresses or a bearer credential.

A client from `MCP_METRICS_ALLOWED_NETWORKS` (default: loopback) is served. Anyone else must
send `Authorization: Bearer <MCP_METRICS_TOKEN>`: without a configured token they get 403;
with one, a missing or wrong credential gets 401. With `MCP_METRICS` off the page does not
exist (404).
"""

import asyncio
import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from mcp_server import metrics

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_BEARER = "bearer "


@lru_cache(maxsize=1)
def allowed_networks() -> tuple[Network, ...]:
    """MCP_METRICS_ALLOWED_NETWORKS, parsed (an address alone is a network of one)."""
    try:
        return tuple(
            ipaddress.ip_network(entry.strip(), strict=False)
            for entry in settings.MCP_METRICS_ALLOWED_NETWORKS
            if entry.strip()
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"MCP_METRICS_ALLOWED_NETWORKS: {exc}") from exc


def _from_allowed_address(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in allowed_networks())


def _credential_matches(request: HttpRequest, token: str) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[: len(_BEARER)].lower() != _BEARER:
        return False
    return hmac.compare_digest(header[len(_BEARER) :].strip().encode(), token.encode())


@require_GET
async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Every process's metrics, to an allowed address or a holder of the credential."""
    if not settings.MCP_METRICS:
        raise Http404("metrics are off (MCP_METRICS)")
    token = settings.MCP_METRICS_TOKEN
    if not _from_allowed_address(request):
        if not token:
            return HttpResponse("metrics are not served to this address\n", status=403)
        if not _credential_matches(request, token):
            response = HttpResponse("a metrics credential is required\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    metrics.flush()  # on the event loop, where this process counts: its own counts are current
    # Reading every process's files is file I/O: off the event loop.
    body = await asyncio.to_thread(metrics.exposition)
    return HttpResponse(body, content_type=metrics.CONTENT_TYPE)
