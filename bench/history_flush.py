"""The history writer's CPU per call in isolation: the event loop's part and the flush's.

    .venv/bin/python bench/history_flush.py                      # SQLite in a temp dir
    .venv/bin/python bench/history_flush.py --database-url postgres://postgres@127.0.0.1:5432/x

Each of `--rounds` rounds (after one of warm-up) runs `--calls` `RunningOperation`s through
`mark_running` and `finish` into a `HistoryWriter` without a thread, then flushes it from
this thread: `time.thread_time()` of each part per call, the median and the best. The
database must exist; its tables are migrated and one tenant and user are added to it."""

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    """Time record and flush of `--calls` calls, `--rounds` times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--spanning",
        type=int,
        default=0,
        help="calls of each round still running at its flush, ended in the next (at C=50: 50)",
    )
    parser.add_argument(
        "--hold",
        action="store_true",
        help="flush as the writer thread's own rounds do (a running call's first state held once)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["MCP_VAR_DIR"] = tempfile.mkdtemp(prefix="mcp-bench-flush-")
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    import django

    django.setup()
    import gc

    from django.core.management import call_command
    from django.db import connection

    from accounts.principal import Principal
    from accounts.services import tenant_create, user_create
    from mcp_server.operations.lifecycle import OperationStatus
    from mcp_server.runtime.history import HistoryWriter
    from mcp_server.runtime.operation import RunningOperation

    call_command("migrate", verbosity=0)
    account = f"bench-{secrets.token_hex(4)}"
    tenant = tenant_create(slug=account)
    user = user_create(username=account, tenant_slug=account)
    principal = Principal(
        user_id=user.pk,
        username=account,
        tenant_id=tenant.pk,
        tenant_slug=tenant.slug,
        is_tenant_admin=False,
        enabled_tools=None,
    )
    writer = HistoryWriter(interval=3600, threaded=False)
    gc.collect()
    gc.freeze()  # as `manage.py serve` does once started
    recorded: list[float] = []
    flushed: list[float] = []
    spanning: list[RunningOperation] = []
    for round_number in range(args.rounds + 1):
        calls = [
            RunningOperation(
                principal=principal,
                tool_name="add",
                arguments={"a": 1, "b": 2},
                connection_id="ws.0123456789abcdef",
                request_id=number,
                writer=writer,
                persist_interval=1.0,
                runner="bench:1",
            )
            for number in range(args.calls)
        ]
        started = time.thread_time()
        for call in spanning:
            call.finish(OperationStatus.SUCCEEDED, result={"content": []})
        ending = calls[: len(calls) - args.spanning]
        spanning = calls[len(ending) :]
        for call in ending:
            call.mark_running()
            call.finish(OperationStatus.SUCCEEDED, result={"content": []})
        for call in spanning:
            call.mark_running()
        queued = time.thread_time()
        writer.flush(hold=args.hold)
        done = time.thread_time()
        if round_number:  # the first one warms the caches and prepares the statements
            recorded.append((queued - started) / args.calls * 1e6)
            flushed.append((done - queued) / args.calls * 1e6)
    print(
        f"{connection.vendor}, {args.calls:,} calls a flush ({args.spanning} spanning it, "
        f"{'held' if args.hold else 'not held'}): run and record "
        f"{statistics.median(recorded):.2f} µs per call (best {min(recorded):.2f}), "
        f"flush {statistics.median(flushed):.2f} µs per call (best {min(flushed):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
