"""`mcp-ws` command line: options, subcommands, and the exit status.

mcp-ws tools
mcp-ws call process_images directory=demo
mcp-ws call process_batch count=5000 --task      # a durable task: survives dropped connections
mcp-ws tasks list | get ID | result ID | cancel ID
mcp-ws runs
mcp-ws errors RUN_ID > errors.json
"""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mcp_server.cli.calls import ToolCall
from mcp_server.cli.commands import UsageError, call_command, parse_arguments, tools_command
from mcp_server.cli.config import ClientConfig, ConfigError, environment, resolve_config
from mcp_server.cli.history import errors_command, runs_command
from mcp_server.cli.output import ExitCode, Output
from mcp_server.cli.reconnect import Backoff
from mcp_server.cli.task_commands import (
    tasks_cancel_command,
    tasks_get_command,
    tasks_list_command,
    tasks_result_command,
)
from mcp_server.cli.tasks import TaskOptions, ttl_milliseconds

EPILOG = """\
connection settings, first found wins: --url/--token, then MCP_URL/MCP_TOKEN, then the
config file (~/.config/mcp-ws/config.toml, keys url, api_url and token).
exit status: 0 ok, 1 the tool or server reported an error (or a task ended without a
result), 2 usage, 3 cannot connect or credentials refused, 4 interrupted by a dropped
connection or a stopped server process, 130 cancelled with Ctrl-C.
"""


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS lets these options stand before or after the subcommand alike.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--url", help="WebSocket URL (default ws://127.0.0.1:8000/mcp)")
    common.add_argument("--api-url", help="REST API base (default: derived from --url)")
    common.add_argument("--token", help="API token (prefer MCP_TOKEN or the config file)")
    common.add_argument("--config", type=Path, help="config file (TOML: url, api_url, token)")
    mode = common.add_mutually_exclusive_group()
    mode.add_argument(
        "--json", dest="json", action="store_true", help="JSON lines (default when not a TTY)"
    )
    mode.add_argument("--no-json", dest="json", action="store_false", help="human output")
    return common


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of mcp-ws."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="mcp-ws",
        description="Command-line client of the MCP Realtime service (MCP over WebSocket).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("tools", parents=[common], help="list the tools you may call")

    call = commands.add_parser(
        "call",
        parents=[common],
        help="call a tool with a live progress bar",
        description="Call a tool. Arguments are key=value (values parsed as JSON when they "
        "parse, else strings) and/or --args '{...}'. Ctrl-C cancels the call.",
    )
    call.add_argument("tool")
    call.add_argument("arguments", nargs="*", metavar="key=value")
    call.add_argument("--args", dest="json_arguments", metavar="JSON", help="arguments object")
    call.add_argument(
        "--retry",
        action="store_true",
        help="re-run the call once after reconnecting if the connection dropped during it "
        "(with --task: create the task again once if the server reports it interrupted)",
    )
    call.add_argument(
        "--task",
        action="store_true",
        help="call it as a durable task (automatic when the tool requires one): a dropped "
        "connection is re-attached to it; Ctrl-C cancels it with tasks/cancel",
    )
    call.add_argument(
        "--detach",
        action="store_true",
        help="create the task and exit at once, printing its id (implies --task)",
    )
    call.add_argument(
        "--ttl",
        type=_positive_float,
        metavar="SECONDS",
        help="how long the server keeps the task and its result (default: the server's; "
        "implies --task)",
    )
    _add_reconnect_options(call)

    runs = commands.add_parser("runs", parents=[common], help="list past runs (REST API)")
    runs.add_argument("--limit", type=_positive_int, default=20, help="how many (max 500)")
    runs.add_argument("--tool", help="only runs of this tool")
    runs.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help="only runs with this status: queued, running, succeeded, failed, cancelled, "
        "interrupted, input_required (repeatable)",
    )

    errors = commands.add_parser(
        "errors", parents=[common], help="download a run's error log (JSON) to stdout"
    )
    errors.add_argument("run_id", metavar="RUN_ID")

    tasks = commands.add_parser(
        "tasks",
        parents=[common],
        help="your durable tasks: list, get, result, cancel",
        description="Durable tasks (made by `call --task`) outlive connections: follow one "
        "from anywhere with `tasks result ID`.",
    )
    actions = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="your tasks, newest first")
    listing.add_argument("--limit", type=_positive_int, default=20, help="how many")
    actions.add_parser("get", parents=[common], help="a task's state").add_argument(
        "task_id", metavar="ID"
    )
    result = actions.add_parser(
        "result",
        parents=[common],
        help="follow a task to its result with the live bar (Ctrl-C stops following)",
        description="Attach to a task: its progress, then its result. A dropped connection "
        "is re-attached. Ctrl-C stops following and leaves the task running.",
    )
    result.add_argument("task_id", metavar="ID")
    _add_reconnect_options(result)
    actions.add_parser("cancel", parents=[common], help="cancel a task").add_argument(
        "task_id", metavar="ID"
    )
    return parser


def _add_reconnect_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reconnect-attempts", type=int, default=6, metavar="N")
    parser.add_argument("--backoff-initial", type=_positive_float, default=0.5, metavar="SECONDS")
    parser.add_argument("--backoff-max", type=_positive_float, default=10.0, metavar="SECONDS")


def _backoff(options: argparse.Namespace) -> Backoff:
    return Backoff(
        initial=options.backoff_initial,
        maximum=max(options.backoff_max, options.backoff_initial),
        attempts=max(options.reconnect_attempts, 0),
    )


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run mcp-ws; the exit status."""
    # Library loggers must never print (a URL or header could reach the terminal).
    logging.getLogger("websockets").addHandler(logging.NullHandler())
    logging.getLogger("websockets").propagate = False
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    options = build_parser().parse_args(argv)
    as_json = getattr(options, "json", None)
    output = Output(json=not out.isatty() if as_json is None else as_json, stdout=out, stderr=err)
    try:
        config = resolve_config(
            url=getattr(options, "url", None),
            api_url=getattr(options, "api_url", None),
            token=getattr(options, "token", None),
            environ=environment(),
            config_path=getattr(options, "config", None),
        )
    except ConfigError as exc:
        output.error(None, str(exc))
        return ExitCode.USAGE
    try:
        return _dispatch(options, config, output)
    except UsageError as exc:
        output.error(config, str(exc))
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.CANCELLED
    except BrokenPipeError:
        return ExitCode.OK


def _dispatch(options: argparse.Namespace, config: ClientConfig, output: Output) -> int:
    if options.command == "tools":
        return tools_command(config, output)
    if options.command == "call":
        arguments = parse_arguments(options.arguments, options.json_arguments)
        return call_command(
            config,
            output,
            ToolCall(options.tool, arguments),
            retries=1 if options.retry else 0,
            backoff=_backoff(options),
            as_task=options.task,
            task_options=TaskOptions(ttl_ms=ttl_milliseconds(options.ttl), detach=options.detach),
        )
    if options.command == "tasks":
        return _dispatch_tasks(options, config, output)
    if options.command == "runs":
        return runs_command(
            config, output, limit=options.limit, tool=options.tool, statuses=options.status
        )
    return errors_command(config, output, options.run_id)


def _dispatch_tasks(options: argparse.Namespace, config: ClientConfig, output: Output) -> int:
    if options.action == "list":
        return tasks_list_command(config, output, limit=options.limit)
    if options.action == "get":
        return tasks_get_command(config, output, options.task_id)
    if options.action == "result":
        return tasks_result_command(config, output, options.task_id, backoff=_backoff(options))
    return tasks_cancel_command(config, output, options.task_id)
