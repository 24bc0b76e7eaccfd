"""A `tools/call` request read into the call the runtime runs (and its task TTL, if a task)."""

from typing import Any

from accounts.principal import Principal
from mcp_server.identity import ServerIdentity
from mcp_server.input_state import StateBinding, input_round
from mcp_server.protocol.errors import METHOD_NOT_FOUND, JsonRpcError, RequestId, invalid_params
from mcp_server.protocol.log_levels import request_log_rank
from mcp_server.protocol.modern import RequestMeta, require_capabilities
from mcp_server.protocol.progress_tokens import progress_token
from mcp_server.protocol.tasks import becomes_task, requested_ttl
from mcp_server.runtime.runner import CallRequest
from mcp_server.tools.catalog import ToolCatalog


def read_tools_call(
    params: dict[str, Any],
    *,
    request_id: RequestId,
    principal: Principal,
    catalog: ToolCatalog,
    identity: ServerIdentity,
    connection_id: str,
    meta: RequestMeta | None = None,
) -> tuple[CallRequest, int | None]:
    """The call `params` ask for and its task TTL (None: a plain call); JsonRpcError when
    the request is invalid or the tool cannot be called so (a 2026-07-28 request, `meta`,
    without a client capability the tool needs: -32021).

    In the handshake era the client asks for a task (`params.task`); a 2026-07-28 call is a
    task when the server decides so (`becomes_task`: the request declares the tasks
    extension, the tool takes long), with the default TTL, but only once the questions the
    tool asks first (`Tool.asks_first`) are answered: until then it is a plain call, which
    ends as an input-required result. A 2026-07-28 call may be the retry of one that asked
    for input: its request state is verified here, before anything runs, and its answers
    are the call's (a task made on the final round has them too)."""
    name = params.get("name")
    if not isinstance(name, str):
        raise invalid_params("tools/call requires a string name")
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise invalid_params("tools/call arguments must be an object")
    tool = catalog.get(name)
    if tool is None:
        raise invalid_params(catalog.refusal(name))
    inputs = None
    if meta is None:
        ttl = requested_ttl(
            params, default=identity.task_default_ttl, maximum=identity.task_max_ttl
        )
        if ttl is not None and tool.task_support == "forbidden":
            raise JsonRpcError(METHOD_NOT_FOUND, f"Tool {name!r} does not support tasks")
        if ttl is None and tool.task_support == "required":
            raise JsonRpcError(METHOD_NOT_FOUND, f"Tool {name!r} must be called as a task")
    else:
        require_capabilities(meta, tool.client_capabilities)
        binding = StateBinding.of(principal, "tool", name, arguments)
        inputs = input_round(params, binding=binding, capabilities=meta.client_capabilities)
        # The tasks extension: the server decides which calls become tasks (a 2025-11-25
        # `params.task` is ignored).
        directed = becomes_task(
            task_support=tool.task_support,
            takes_long=tool.duration == "long",
            client_capabilities=meta.client_capabilities,
        ) and inputs.answers_all(tool.asks_first)
        ttl = identity.task_default_ttl if directed else None
    call = CallRequest(
        principal=principal,
        tool=tool,
        arguments=arguments,
        connection_id=connection_id,
        request_id=request_id,
        progress_token=progress_token(params),
        inputs=inputs,
        log_rank=request_log_rank(meta.log_level) if meta is not None else None,
        asks_client=meta is None,
        # A task of the tasks extension asks its client through the task (tasks/update).
        asks_through_task=meta is not None and ttl is not None,
        client_capabilities=meta.client_capabilities if meta is not None else {},
    )
    return call, ttl
