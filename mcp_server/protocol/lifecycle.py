"""The MCP lifecycle: the initialize handshake (its params and result) and the shutdown notice."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp_server.protocol import methods
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.messages import notification_message
from mcp_server.protocol.versions import negotiate_version


@dataclass(frozen=True, slots=True)
class InitializeParams:
    """What a client says about itself in `initialize`."""

    protocol_version: str
    capabilities: dict[str, Any]
    client_name: str
    client_version: str


def parse_initialize(params: dict[str, Any]) -> InitializeParams:
    """Validate `initialize` params; -32602 when a required member is missing or mistyped."""
    version = params.get("protocolVersion")
    if not isinstance(version, str) or not version:
        raise invalid_params("initialize requires a string protocolVersion")
    capabilities = params.get("capabilities", {})
    if not isinstance(capabilities, dict):
        raise invalid_params("capabilities must be an object")
    client_info = params.get("clientInfo", {})
    if not isinstance(client_info, dict):
        raise invalid_params("clientInfo must be an object")
    return InitializeParams(
        protocol_version=version,
        capabilities=capabilities,
        client_name=str(client_info.get("name", "")),
        client_version=str(client_info.get("version", "")),
    )


def initialize_result(
    *,
    requested_version: str,
    server_name: str,
    server_title: str,
    server_version: str,
    capabilities: dict[str, Any],
    instructions: str | None = None,
) -> dict[str, Any]:
    """The `initialize` result with the negotiated revision."""
    result: dict[str, Any] = {
        "protocolVersion": negotiate_version(requested_version),
        "capabilities": capabilities,
        "serverInfo": {"name": server_name, "title": server_title, "version": server_version},
    }
    if instructions:
        result["instructions"] = instructions
    return result


def shutdown_notice(
    *, tasks_keep_running: bool, interrupted_tasks: Sequence[str] = ()
) -> dict[str, Any]:
    """The `notifications/message` a client gets when the server it is connected to shuts
    down (`tasks_keep_running`: whether its tasks run on elsewhere, except the
    `interrupted_tasks` this server runs itself, named in `data.interruptedTasks`)."""
    if not tasks_keep_running:
        outcome = "Operations running on it, tasks included, are interrupted."
    elif interrupted_tasks:
        outcome = (
            "Tasks running on workers keep running and can be resumed from any server; "
            f"{len(interrupted_tasks)} running on this server are interrupted "
            "(interruptedTasks)."
        )
    else:
        outcome = "Tasks keep running and can be resumed from any server."
    data: dict[str, Any] = {
        "message": "This server is shutting down; reconnect to continue. " + outcome,
        "reason": "shutdown",
    }
    if interrupted_tasks:
        data["interruptedTasks"] = list(interrupted_tasks)
    params = {"level": "warning", "logger": "server", "data": data}
    return notification_message(methods.NOTIFICATION_MESSAGE, params)
