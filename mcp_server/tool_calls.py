"""A `tools/call` request read into the call the runtime runs (and its task TTL, if a task)."""

from typing import Any

from accounts.principal import Principal
from mcp_server.identity import ServerIdentity
from mcp_server.input_state import StateBinding, input_round
from mcp_server.protocol.errors import METHOD_NOT_FOUND, JsonRpcError, RequestId, invalid_params
from mcp_server.protocol.log_levels import request_log_rank
from mcp_server.protocol.modern import RequestMeta, require_capabilities
from mcp_server.protocol.progress_tokens import progress_token
from mcp_server.protocol.tasks import requested_ttl
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

    A 2026-07-28 call may be the retry of one that asked for input: its request state is
    verified here, before anything runs."""
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
    # 2026-07-28 has no per-request task augmentation (`params.task`): there the server
    # decides which calls become tasks (the tasks extension), so the member is ignored.
    ttl = (
        requested_ttl(params, default=identity.task_default_ttl, maximum=identity.task_max_ttl)
        if meta is None
        else None
    )
    if ttl is not None and tool.task_support == "forbidden":
        raise JsonRpcError(METHOD_NOT_FOUND, f"Tool {name!r} does not support tasks")
    if ttl is None and tool.task_support == "required":
        raise JsonRpcError(METHOD_NOT_FOUND, f"Tool {name!r} must be called as a task")
    if meta is not None:
        require_capabilities(meta, tool.client_capabilities)
    inputs = None
    # A task's input travels otherwise (the tasks extension's tasks/update), not by retries.
    if meta is not None and ttl is None:
        binding = StateBinding.of(principal, "tool", name, arguments)
        inputs = input_round(params, binding=binding, capabilities=meta.client_capabilities)
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
    )
    return call, ttl
