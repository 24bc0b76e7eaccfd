"""Operation-history API on 100,000 rows of PostgreSQL: request latency and the query plan.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/api_history.py

Works in a throwaway database next to DATABASE_URL's, dropped afterwards."""

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOOLS = ["process_images", "process_batch", "sleep", "echo", "calculator"]
STATUSES = ["succeeded"] * 80 + ["failed"] * 12 + ["cancelled"] * 5 + ["running"] * 3
P50_GOAL_MS = 100.0


def _populate(rows: int) -> dict[str, Any]:
    """A tenant with an admin and 20 members, and `rows` operations spread over 30 days."""
    from django.db import connection
    from django.utils import timezone

    from accounts.services import tenant_create, token_create, user_create
    from mcp_server.models import Operation

    tenant = tenant_create(slug="bench")
    admin = user_create(username="bench-admin", tenant_slug="bench", tenant_admin=True)
    members: list[Any] = [
        user_create(username=f"member{i}", tenant_slug="bench") for i in range(20)
    ]
    other = tenant_create(slug="other")
    outsider: Any = user_create(username="outsider", tenant_slug="other")
    rng = random.Random(4)
    now = timezone.now()
    started = time.perf_counter()
    batch: list[Operation] = []
    for index in range(rows):
        queued_at = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        status = rng.choice(STATUSES)
        finished = status != "running"
        duration = timedelta(seconds=rng.lognormvariate(0, 1.2)) if finished else None
        batch.append(
            Operation(
                tenant=tenant,
                user=rng.choice(members),
                tool=rng.choice(TOOLS),
                arguments={"count": rng.randint(1, 10_000), "folder": f"photos/{index % 997}"},
                status=status,
                progress=1.0 if finished else 0.5,
                total=1.0,
                message="" if finished else "batch 3/7",
                queued_at=queued_at,
                started_at=queued_at,
                finished_at=queued_at + duration if duration else None,
                duration=duration,
                result_summary={"processed": 10} if finished else None,
            )
        )
        if len(batch) == 5000:
            Operation.objects.bulk_create(batch)
            batch.clear()
    Operation.objects.bulk_create(batch)
    Operation.objects.bulk_create(
        [Operation(tenant=other, user=outsider, tool="echo") for _ in range(1000)]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"created {rows:,} operations in {time.perf_counter() - started:.1f} s")
    return {
        "admin_token": token_create(user=admin, name="bench").raw,
        "member_token": token_create(user=members[0], name="bench").raw,
        "admin_user": admin,
        "sample_id": Operation.objects.filter(tenant=tenant).values_list("pk", flat=True)[0],
    }


def _time(label: str, call: Callable[[], Any], requests: int) -> float:
    call()  # warm-up
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (label, response.status_code)
    samples.sort()
    p50 = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    print(f"  {label:<48} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    return p50


def _explain(principal_token: str) -> None:
    from accounts.principal import Principal
    from accounts.selectors import principal_for_token
    from mcp_server.selectors import operation_list

    principal = principal_for_token(principal_token)
    assert isinstance(principal, Principal)
    filtered = (
        operation_list(principal=principal)
        .filter(tool="process_images", status__in=["failed"])
        .order_by("-queued_at", "-pk")[:51]
    )
    print("\nEXPLAIN ANALYZE of GET /api/runs/?tool=process_images&status=failed (tenant admin):")
    print(filtered.explain(analyze=True, buffers=True))


def _admin_queries(staff: Any) -> None:
    """The admin list's slowest queries, to see what a larger table would cost."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        staff.get("/admin/mcp_server/operation/")
    slowest = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:4]
    print(f"    admin list: {len(captured.captured_queries)} queries; slowest:")
    for query in slowest:
        print(f"      {float(query['time']) * 1000:6.1f} ms  {query['sql'][:110]}")


def _run(rows: int, requests: int, time_index: bool) -> None:
    import django
    from django.test import Client
    from django.test.utils import setup_test_environment

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from bench.servers import BENCH_LIMITS

    os.environ.update(BENCH_LIMITS)  # on, and far above what this makes
    django.setup()
    setup_test_environment(debug=False)
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    world = _populate(rows)
    if time_index:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE INDEX bench_op_time ON mcp_server_operation (queued_at DESC); ANALYZE"
            )
        print("added an index on queued_at alone (--time-index)")
    admin = Client(HTTP_AUTHORIZATION=f"Bearer {world['admin_token']}")
    member = Client(HTTP_AUTHORIZATION=f"Bearer {world['member_token']}")
    second_page = admin.get("/api/runs/").json()["next"]
    print(f"\nGET latency over {requests} requests each (django.test.Client, in process):")
    p50 = _time("/api/runs/ (tenant admin, 50 a page)", lambda: admin.get("/api/runs/"), requests)
    _time("/api/runs/ (member)", lambda: member.get("/api/runs/"), requests)
    _time("/api/runs/ second page (cursor)", lambda: admin.get(second_page), requests)
    _time(
        "/api/runs/?tool=process_images&status=failed",
        lambda: admin.get("/api/runs/", {"tool": "process_images", "status": "failed"}),
        requests,
    )
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()
    _time(
        "/api/runs/?created_after=<7 days ago>&ordering=created",
        lambda: admin.get("/api/runs/", {"created_after": week_ago, "ordering": "created"}),
        requests,
    )
    _time(
        "/api/runs/?ordering=-duration",
        lambda: admin.get("/api/runs/", {"ordering": "-duration"}),
        requests,
    )
    _time("/api/runs/?q=photos/42", lambda: admin.get("/api/runs/", {"q": "photos/42"}), 10)
    _time("/api/runs/{id}/", lambda: admin.get(f"/api/runs/{world['sample_id']}/"), requests)
    _time("/api/stats/?hours=720 (all rows)", lambda: admin.get("/api/stats/?hours=720"), 10)
    staff = Client()
    world["admin_user"].is_staff = True
    world["admin_user"].is_superuser = True
    world["admin_user"].save()
    staff.force_login(world["admin_user"])
    _time("/admin/mcp_server/operation/", lambda: staff.get("/admin/mcp_server/operation/"), 10)
    _admin_queries(staff)
    verdict = "meets" if p50 < P50_GOAL_MS else "MISSES"
    print(f"\nGET /api/runs/ p50 {p50:.1f} ms {verdict} the {P50_GOAL_MS:.0f} ms goal")
    _explain(world["admin_token"])


def main() -> None:
    """Create the throwaway database, run the measurements, drop it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--time-index",
        action="store_true",
        help="add an index on queued_at alone first (what the admin's global lists need)",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL server (postgres://...).")
    from bench.servers import create_database, drop_database

    name, bench_url = create_database(url)
    os.environ["DATABASE_URL"] = bench_url
    print(f"throwaway database {name}")
    try:
        _run(args.rows, args.requests, args.time_index)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(url, name)
        print(f"dropped {name}")


if __name__ == "__main__":
    main()
