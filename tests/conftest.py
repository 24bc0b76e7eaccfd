import os
from collections.abc import Iterator

import pytest

from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.limits import FairScheduler, Limits
from mcp_server.runtime.runner import OperationRunner
from tests.cluster.support import PG_SERVER_URL
from tests.services import ensure_postgres, ensure_redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail early, and say how to fix it, when a service the suite needs is down."""
    problems = [ensure_redis(REDIS_URL)]
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        problems.append(ensure_postgres(database_url))
    # tests/cluster always runs its processes on PostgreSQL, whatever the suite's database.
    problems.append(ensure_postgres(PG_SERVER_URL))
    messages = [problem for problem in problems if problem]
    if messages:
        pytest.exit("\n".join(messages), returncode=3)


@pytest.fixture(autouse=True)
def _fresh_failed_auth_throttle() -> Iterator[None]:
    """Failed authentications are counted per address for the whole process: per test here."""
    from accounts.auth_throttle import failed_auth_throttle

    failed_auth_throttle().clear()
    yield
    failed_auth_throttle().clear()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(scope="session", autouse=True)
def _close_thread_connections(django_db_setup, django_db_blocker):
    """Close the connections async tests opened on Django's sync thread, so the test
    database can be dropped at the end (PostgreSQL refuses while sessions remain)."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def writer() -> Iterator[HistoryWriter]:
    history = HistoryWriter(interval=3600)  # flushed explicitly by the tests
    yield history
    history.stop()  # flushes, and ends the thread (with its database connection) if one started


@pytest.fixture
def runner(writer: HistoryWriter) -> OperationRunner:
    return OperationRunner(
        scheduler=FairScheduler(Limits(per_connection=4, per_user=1, per_tenant=8, total=16)),
        writer=writer,
        progress_rate=10,
        persist_interval=0.05,
    )
