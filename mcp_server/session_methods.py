"""What a session answers itself: the capabilities it declares, the handlers of its own
methods (initialize, ping, server/discover, tools/*, logging/setLevel), and the tables that
send every method to its handler (the other features' to the parts `SessionFeatures` makes).
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcp_server.cluster.dispatch import DispatchQueueFull
from mcp_server.protocol import methods
from mcp_server.protocol.errors import (
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    JsonRpcError,
)
from mcp_server.protocol.lifecycle import initialize_result, parse_initialize
from mcp_server.protocol.messages import (
    Request,
)
from mcp_server.protocol.modern import (
    discover_result,
)
from mcp_server.protocol.pagination import paginate
from mcp_server.protocol.tasks import TASKS_EXTENSION
from mcp_server.tool_calls import read_tools_call

if TYPE_CHECKING:
    pass
from mcp_server.session_state import SessionState

if TYPE_CHECKING:
    from mcp_server.session import McpSession

Handler = Callable[["McpSession", Request], Awaitable[dict[str, Any]]]

SERVER_CAPABILITIES: dict[str, Any] = {
    "logging": {},
    "completions": {},
    # A tenant's tool set can change while connected (notifications/tools/list_changed), and
    # with it the prompts and resource templates that need a tool (*/list_changed).
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"subscribe": True, "listChanged": True},
    "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
}
# What a 2026-07-28 client learns from server/discover. List changes and resource updates
# reach a modern client only through subscriptions/listen (listens.py). Tasks are the tasks
# extension's (never the 2025-11-25 `tasks` capability).
MODERN_CAPABILITIES: dict[str, Any] = {
    "logging": {},
    "completions": {},
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"subscribe": True, "listChanged": True},
    "extensions": {TASKS_EXTENSION: {}},
}


async def _initialize(session: "McpSession", request: Request) -> dict[str, Any]:
    if session.state is not SessionState.AWAITING_INITIALIZE:
        raise JsonRpcError(INVALID_REQUEST, "Session already initialized")
    hello = parse_initialize(request.params)
    result = initialize_result(
        requested_version=hello.protocol_version,
        server_name=session.identity.name,
        server_title=session.identity.title,
        server_version=session.identity.version,
        capabilities=SERVER_CAPABILITIES,
        instructions=session.identity.instructions,
    )
    session.protocol_version = result["protocolVersion"]
    session.client_capabilities = hello.capabilities
    session.ready()
    return result


async def _ping(session: "McpSession", request: Request) -> dict[str, Any]:
    return {}


async def _discover(session: "McpSession", request: Request) -> dict[str, Any]:
    return discover_result(MODERN_CAPABILITIES, session.identity.instructions)


async def _tools_list(session: "McpSession", request: Request) -> dict[str, Any]:
    tools = session.catalog.tools
    start, end, next_cursor = paginate(
        len(tools), request.params.get("cursor"), session.identity.tools_page_size
    )
    result: dict[str, Any] = {"tools": [tool.definition for tool in tools[start:end]]}
    if next_cursor is not None:
        result["nextCursor"] = next_cursor
    return result


async def _tools_call(session: "McpSession", request: Request) -> dict[str, Any]:
    call, ttl = read_tools_call(
        request.params,
        request_id=request.id,
        principal=session.principal,
        catalog=session.catalog,
        identity=session.identity,
        connection_id=session.connection_id,
        meta=request.meta,
    )
    try:
        if ttl is None:
            return await session.executor.call(call, session.listener)
        if request.meta is not None:
            return await session.tasks.create(call, ttl)
        return await session.tasks.start(call, ttl)
    except DispatchQueueFull as full:
        raise JsonRpcError(LIMIT_EXCEEDED, str(full), full.data) from None


async def _logging_set_level(session: "McpSession", request: Request) -> dict[str, Any]:
    session.log_level = request.params.get("level")  # type: ignore[assignment]
    return {}


REQUEST_HANDLERS: dict[str, Handler] = {
    methods.INITIALIZE: _initialize,
    methods.PING: _ping,
    methods.TOOLS_LIST: _tools_list,
    methods.TOOLS_CALL: _tools_call,
    methods.LOGGING_SET_LEVEL: _logging_set_level,
    methods.TASKS_GET: lambda session, request: session.tasks.get(request),
    methods.TASKS_RESULT: lambda session, request: session.tasks.result(request),
    methods.TASKS_LIST: lambda session, request: session.tasks.list(request),
    methods.TASKS_CANCEL: lambda session, request: session.tasks.cancel(request),
    methods.RESOURCES_LIST: lambda session, request: session.resources.list(request),
    methods.RESOURCES_TEMPLATES_LIST: lambda s, request: s.resources.templates(request),
    methods.RESOURCES_READ: lambda session, request: session.resources.read(request),
    methods.PROMPTS_LIST: lambda session, request: session.prompts.list(request),
    methods.PROMPTS_GET: lambda session, request: session.prompts.get(request),
    methods.RESOURCES_SUBSCRIBE: lambda s, request: s.subscriptions.subscribe(request),
    methods.RESOURCES_UNSUBSCRIBE: lambda s, request: s.subscriptions.unsubscribe(request),
    methods.COMPLETION_COMPLETE: lambda session, request: session.completion.complete(request),
}
# The methods of a 2026-07-28 request (no handshake, ping, setLevel or subscribe).
MODERN_HANDLERS: dict[str, Handler] = {
    **{
        method: REQUEST_HANDLERS[method]
        for method in (
            methods.TOOLS_LIST,
            methods.TOOLS_CALL,
            methods.RESOURCES_LIST,
            methods.RESOURCES_TEMPLATES_LIST,
            methods.RESOURCES_READ,
            methods.PROMPTS_LIST,
            methods.PROMPTS_GET,
            methods.COMPLETION_COMPLETE,
        )
    },
    methods.SERVER_DISCOVER: _discover,
    methods.SUBSCRIPTIONS_LISTEN: lambda session, request: session.listens.listen(
        request, session.principal.user_id
    ),
    # The tasks extension's vocabulary, over the same rows as the 2025-11-25 tasks/*.
    methods.TASKS_GET: lambda session, request: session.tasks.detailed(request),
    methods.TASKS_UPDATE: lambda session, request: session.tasks.update(request),
    methods.TASKS_CANCEL: lambda session, request: session.tasks.cancel_cooperatively(request),
}
# Requests that run as their own task so the connection stays responsive meanwhile.
SPAWNED: frozenset[str] = frozenset(
    {methods.TOOLS_CALL, methods.TASKS_RESULT, methods.SUBSCRIPTIONS_LISTEN}
)
