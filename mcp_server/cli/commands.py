"""The WebSocket subcommands, `tools` and `call`; each returns the process exit status."""

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from rich.table import Table

from mcp_server.cli.calls import (
    CANCEL_REASON,
    CallOutcome,
    Cancelled,
    OutcomeKind,
    ToolCall,
    ToolCallRunner,
    outcome_of,
    until_cancelled,
)
from mcp_server.cli.config import ClientConfig
from mcp_server.cli.output import ExitCode, Output
from mcp_server.cli.progress import JsonLinesCallRenderer, RichCallRenderer
from mcp_server.cli.reconnect import Backoff, ReconnectFailed
from mcp_server.cli.session import ClientSession
from mcp_server.cli.tasks import TaskCallRunner, TaskOptions, TaskReconnectFailed, runs_as_task
from mcp_server.client.session import (
    AuthenticationRefused,
    ConnectError,
    ConnectionLost,
    JsonObject,
    McpConnection,
    RpcError,
)

LIST_TIMEOUT = 30.0
T = TypeVar("T")


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


async def _on_fresh_connection(
    config: ClientConfig, work: Callable[[McpConnection], Awaitable[T]]
) -> T:
    connection = await McpConnection.open(
        config.url, token=config.token, on_notification=lambda method, params: None
    )
    try:
        return await work(connection)
    finally:
        await connection.close()


def ask_server(
    config: ClientConfig,
    output: Output,
    what: str,
    work: Callable[[McpConnection], Awaitable[T]],
    *,
    timeout: float,
) -> T | ExitCode:
    """Run `work` on a fresh connection; its value, or the exit status after reporting why not.

    `timeout` is the limit `work` keeps to, named in the message when it runs out.
    """
    try:
        return asyncio.run(_on_fresh_connection(config, work))
    except AuthenticationRefused as exc:
        output.error(config, refused_message(config, exc))
        return ExitCode.CONNECTION
    except TimeoutError:
        output.error(config, f"no answer to {what} within {timeout:g} s")
        return ExitCode.CONNECTION
    except (ConnectError, ConnectionLost, OSError) as exc:
        output.error(config, str(exc))
        return ExitCode.CONNECTION
    except RpcError as exc:
        output.error(config, f"{what} failed: {exc}")
        return ExitCode.FAILED


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
    # list_tools keeps each page to LIST_TIMEOUT.
    tools = ask_server(config, output, "tools/list", list_tools, timeout=LIST_TIMEOUT)
    if isinstance(tools, ExitCode):
        return tools
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
    if outcome.kind is OutcomeKind.DETACHED:
        return ExitCode.OK
    if outcome.result is None or outcome.result.get("isError"):
        return ExitCode.FAILED
    return ExitCode.OK


CallRenderer = RichCallRenderer | JsonLinesCallRenderer
CallBody = Callable[[ClientSession, CallRenderer, asyncio.Event], Awaitable[CallOutcome]]


def call_renderer(config: ClientConfig, output: Output, *, live: bool = True) -> CallRenderer:
    """JSON lines for programs, else the live bar (none when `live` is False)."""
    if output.json:
        return JsonLinesCallRenderer(output.stdout)
    return RichCallRenderer(
        output.console(), output.error_console(), api_url=config.api_url, live=live
    )


def run_call(
    config: ClientConfig,
    output: Output,
    renderer: CallRenderer,
    body: CallBody,
    backoff: Backoff,
    *,
    refused: str = "the server refused the call",
) -> int:
    """Run `body` (a call, or the following of a task) with Ctrl-C wired to its cancel event;
    render its outcome or report why there is none (a JSON-RPC error after `refused`); the
    exit status."""

    async def run() -> CallOutcome:
        cancel = asyncio.Event()
        session = ClientSession(config, backoff, renderer)
        with _sigint_cancels(cancel):
            return await body(session, renderer, cancel)

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
    except TaskReconnectFailed as exc:
        renderer.close()
        output.error(config, str(exc))
        return ExitCode.CONNECTION
    except ReconnectFailed as exc:
        renderer.close()
        output.error(config, f"{exc}; the call was interrupted by the disconnect")
        return ExitCode.CONNECTION
    except TimeoutError:
        renderer.close()
        output.error(config, "the server did not answer in time")
        return ExitCode.CONNECTION
    except RpcError as exc:
        renderer.close()
        output.error(config, f"{refused}: {exc}")
        return ExitCode.FAILED
    renderer.finished(outcome)
    return _exit_code(outcome)


async def tool_requires_task(session: ClientSession, name: str, cancel: asyncio.Event) -> bool:
    """Whether tools/list says `name` must be called as a task (False if it is not listed).

    The session's connection stays open for the call; on Ctrl-C the answer is False and the
    runner, seeing `cancel` set, reports the cancellation.
    """
    try:
        connection = await until_cancelled(session.start(), cancel)
        tools = await until_cancelled(list_tools(connection), cancel)
    except Cancelled:
        return False
    except BaseException:
        await session.close()
        raise
    tool = next((tool for tool in tools if tool.get("name") == name), None)
    return runs_as_task(tool, requested=False)


def call_command(
    config: ClientConfig,
    output: Output,
    call: ToolCall,
    *,
    retries: int,
    backoff: Backoff,
    as_task: bool = False,
    task_options: TaskOptions | None = None,
) -> int:
    """Call a tool with live progress; Ctrl-C cancels it; drops reconnect.

    As a task (`as_task`, a detached one, one with a ttl, or a tool whose taskSupport is
    "required") the call survives drops: the runner re-attaches to it after reconnecting.
    """
    options = task_options or TaskOptions()
    requested = as_task or options.detach or options.ttl_ms is not None
    renderer = call_renderer(config, output, live=not options.detach)

    async def body(
        session: ClientSession, events: CallRenderer, cancel: asyncio.Event
    ) -> CallOutcome:
        started = time.monotonic()
        as_a_task = requested or await tool_requires_task(session, call.name, cancel)
        if cancel.is_set():  # Ctrl-C before anything was called
            await session.close()
            return outcome_of(OutcomeKind.CANCELLED, "", started, message=CANCEL_REASON)
        if as_a_task:
            runner = TaskCallRunner(session, events, retries=retries, options=options)
            return await runner.run(call, cancel)
        return await ToolCallRunner(session, events, retries=retries).run(call, cancel)

    return run_call(config, output, renderer, body, backoff)
