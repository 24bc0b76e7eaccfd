"""How the server introduces itself to clients, and its per-session limits."""

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from django.conf import settings


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """How the server introduces itself, and its per-session limits."""

    name: str
    title: str
    version: str
    tools_page_size: int = 50
    instructions: str | None = None
    tasks_page_size: int = 50
    task_default_ttl: int = 24 * 3600 * 1000
    task_max_ttl: int = 7 * 24 * 3600 * 1000
    task_poll_interval: int = 1000
    ping_interval: float = 30.0
    ping_timeout: float = 15.0
    client_request_timeout: float = 300.0
    client_requests_per_connection: int = 16
    resources_page_size: int = 50
    prompts_page_size: int = 50
    max_subscriptions: int = 100
    cache_ttl_ms: int = 60_000
    listens_per_connection: int = 16
    listens_per_user: int = 64
    listen_max_entries: int = 100
    listen_keepalive_seconds: float = 15.0


def identity_from_settings() -> ServerIdentity:
    """The server's name, version and limits, as settings have them now."""
    try:
        package_version = version("mcp-realtime")
    except PackageNotFoundError:
        package_version = "0.0.0"
    return ServerIdentity(
        name=settings.MCP_SERVER_NAME,
        title=settings.MCP_SERVER_TITLE,
        version=package_version,
        tools_page_size=settings.MCP_TOOLS_PAGE_SIZE,
        tasks_page_size=settings.MCP_TASKS_PAGE_SIZE,
        task_default_ttl=settings.MCP_TASK_DEFAULT_TTL,
        task_max_ttl=settings.MCP_TASK_MAX_TTL,
        task_poll_interval=settings.MCP_TASK_POLL_INTERVAL,
        ping_interval=settings.MCP_CLIENT_PING_INTERVAL,
        ping_timeout=settings.MCP_CLIENT_PING_TIMEOUT,
        client_request_timeout=settings.MCP_CLIENT_REQUEST_TIMEOUT,
        client_requests_per_connection=settings.MCP_CLIENT_REQUESTS_PER_CONNECTION,
        resources_page_size=settings.MCP_RESOURCES_PAGE_SIZE,
        prompts_page_size=settings.MCP_PROMPTS_PAGE_SIZE,
        max_subscriptions=settings.MCP_MAX_SUBSCRIPTIONS_PER_SESSION,
        cache_ttl_ms=settings.MCP_CACHE_TTL_MS,
        listens_per_connection=settings.MCP_LISTENS_PER_CONNECTION,
        listens_per_user=settings.MCP_LISTENS_PER_USER,
        listen_max_entries=settings.MCP_LISTEN_MAX_ENTRIES,
        listen_keepalive_seconds=settings.MCP_LISTEN_KEEPALIVE_SECONDS,
    )
