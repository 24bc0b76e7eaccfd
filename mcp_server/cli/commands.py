"""The WebSocket subcommands, `tools` and `call`; each returns the process exit status."""

import asyncio
import contextlib
import json
import signal
from collections.abc import Iterator

from rich.table import Table

from mcp_server.cli.calls import CallOutcome, OutcomeKind, ToolCall, ToolCallRunner
from mcp_server.cli.config import ClientConfig
from mcp_server.cli.connection import (
    AuthenticationRefused,
    ConnectError,
    ConnectionLost,
    JsonObject,
    McpConnection,
    RpcError,
)
from mcp_server.cli.output import ExitCode, Output
from mcp_server.cli.progress import JsonLinesCallRenderer, RichCallRenderer
from mcp_server.cli.reconnect import Backoff, ReconnectFailed
from mcp_server.cli.session import ClientSession

LIST_TIMEOUT = 30.0


class UsageError(Exception):
    """The command line is wrong."""


def refused_message(config: ClientConfig, exc: AuthenticationRefused) -> str:
    """Why the credentials were refused, and where the token came from."""
    if config.token is None:
        return (
            f"{exc}: no token given; pass --token, set MCP_TOKEN, or put token in "
            "~/.config/mcp-ws/config.toml"
        )
    return f"{exc}; the token came from {config.source}"


def parse_arguments(pairs: list[str], json_arguments: str | None) -> JsonObject:
    """Tool arguments from `--args JSON` and `key=value` pairs (values as JSON when they parse)."""
    arguments: JsonObject = {}
    if json_arguments:
        try:
            parsed = json.loads(json_arguments)
        except ValueError as exc:
            raise UsageError(f"--args is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise UsageError("--args must be a JSON object")
        arguments.update(parsed)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments


# --- tools ---------------------------------------------------------------------------------


async def list_tools(connection: McpConnection) -> list[JsonObject]:
    """Every tool, following tools/list pages."""
    tools: list[JsonObject] = []
    cursor: str | None = None
    while True:
        result = await asyncio.wait_for(
            connection.request("tools/list", {"cursor": cursor} if cursor else {}), LIST_TIMEOUT
        )
        tools.extend(tool for tool in result.get("tools", []) if isinstance(tool, dict))
        cursor = result.get("nextCursor")
        if not cursor:
            return tools


def _fetch_tools(config: ClientConfig) -> list[JsonObject]:
    async def fetch() -> list[JsonObject]:
        connection = await McpConnection.open(
            config.url, token=config.token, on_notification=lambda method, params: None
        )
        try:
            return await list_tools(connection)
        finally:
            await connection.close()

    return asyncio.run(fetch())


def _describe_arguments(schema: JsonObject) -> str:
    required = set(schema.get("required") or [])
    parts = []
    for name, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type", "any") if isinstance(spec, dict) else "any"
        text = f"{name}{'*' if name in required else ''}: {kind}"
        if isinstance(spec, dict) and "default" in spec:
            text += f" = {json.dumps(spec['default'])}"
        parts.append(text)
    return ", ".join(parts)


def tools_command(config: ClientConfig, output: Output) -> int:
    """List the tools (tools/list over the WebSocket)."""
    try:
        tools = _fetch_tools(config)
    except AuthenticationRefused as exc:
        output.error(config, refused_message(config, exc))
        return ExitCode.CONNECTION
    except TimeoutError:
        output.error(config, f"no answer to tools/list within {LIST_TIMEOUT:g} s")
        return ExitCode.CONNECTION
    except (ConnectError, ConnectionLost, OSError) as exc:
        output.error(config, str(exc))
        return ExitCode.CONNECTION
    except RpcError as exc:
        output.error(config, f"tools/list failed: {exc}")
        return ExitCode.FAILED
    if output.json:
        for tool in tools:
            output.json_line(tool)
        return ExitCode.OK
    table = Table("Tool", "Arguments (* required)", "Description")
    for tool in tools:
        table.add_row(
            f"[bold]{tool['name']}[/]",
            _describe_arguments(tool.get("inputSchema") or {}),
            str(tool.get("description", "")),
        )
    output.console().print(table)
    return ExitCode.OK


# --- call ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _sigint_cancels(cancel: asyncio.Event) -> Iterator[None]:
    """The first Ctrl-C sets `cancel`; a second one stops waiting at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            cancel.set()
        elif main is not None:
            main.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _exit_code(outcome: CallOutcome) -> int:
    if outcome.kind is OutcomeKind.CANCELLED:
        return ExitCode.CANCELLED
    if outcome.kind is OutcomeKind.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if outcome.result is None or outcome.result.get("isError"):
        return ExitCode.FAILED
    return ExitCode.OK


def call_command(
    config: ClientConfig, output: Output, call: ToolCall, *, retries: int, backoff: Backoff
) -> int:
    """Call a tool with live progress; Ctrl-C cancels it; drops reconnect."""
    renderer: RichCallRenderer | JsonLinesCallRenderer
    if output.json:
        renderer = JsonLinesCallRenderer(output.stdout)
    else:
        renderer = RichCallRenderer(
            output.console(), output.error_console(), api_url=config.api_url
        )

    async def run() -> CallOutcome:
        cancel = asyncio.Event()
        session = ClientSession(config, backoff, renderer)
        runner = ToolCallRunner(session, renderer, retries=retries)
        with _sigint_cancels(cancel):
            return await runner.run(call, cancel)

    try:
        outcome = asyncio.run(run())
    except (asyncio.CancelledError, KeyboardInterrupt):
        renderer.close()
        output.error(config, "stopped")
        return ExitCode.CANCELLED
    except AuthenticationRefused as exc:
        renderer.close()
        output.error(config, refused_message(config, exc))
        return ExitCode.CONNECTION
    except ConnectError as exc:
        renderer.close()
        output.error(config, str(exc))
        return ExitCode.CONNECTION
    except ReconnectFailed as exc:
        renderer.close()
        output.error(config, f"{exc}; the call was interrupted by the disconnect")
        return ExitCode.CONNECTION
    except RpcError as exc:
        renderer.close()
        output.error(config, f"the server refused the call: {exc}")
        return ExitCode.FAILED
    renderer.finished(outcome)
    return _exit_code(outcome)
