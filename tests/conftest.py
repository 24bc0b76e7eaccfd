import os
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio

from mcp_server.cluster.dispatch import Dispatch
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.limits import FairScheduler, Limits
from mcp_server.runtime.runner import OperationRunner
from tests.cluster.support import PG_SERVER_URL
from tests.e2e import templates
from tests.e2e.templates import DatabaseTemplates
from tests.services import ensure_postgres, ensure_redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Directories whose modules start servers (or browsers) of their own, once per module.
_MODULE_GROUPED_DIRS = ("e2e", "cli", "console", "http", "cluster")
# The session-scoped cluster of tests/cluster/conftest.py: its modules share one xdist worker.
_SHARED_CLUSTER_FIXTURE = "running_cluster"
_DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_reset_sequences"})


def pytest_configure(config: pytest.Config) -> None:
    """Give the run (the controller and its xdist workers) one directory for its templates."""
    templates.begin_run(config)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, called in the controller
def pytest_configure_node(node: Any) -> None:
    """Hand the run's directory to each xdist worker."""
    templates.hand_to_worker(node.config, node.workerinput)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the run's templates once every worker has finished (in the controller)."""
    templates.end_run(config)


@pytest.fixture(scope="session")
def database_templates(pytestconfig: pytest.Config) -> DatabaseTemplates:
    """The run's migrated databases, which every deployment copies (tests/e2e/templates.py)."""
    return templates.of_run(pytestconfig)


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


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--database-layers`: the selection `make test-postgres` runs."""
    parser.addoption(
        "--database-layers",
        action="store_true",
        help="run only the tests that reach the database: those of the test process (the db "
        "or transactional_db fixture, the django_db mark) and tests/cluster; the rest does "
        "not depend on the database and runs once, in the SQLite run",
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Select the database layers when asked; keep tests that share processes together.

    With `--dist loadgroup`, the modules of tests/cluster that use the session's cluster (two
    web processes and a worker) go to one xdist worker, so that cluster starts once; each
    other module of tests/cluster (clusters of its own), tests/e2e, cli, console and http goes
    to one worker whole, so its module-scoped processes and browser start once. The rest is
    spread test by test.
    """
    if config.getoption("--database-layers"):
        kept = [item for item in items if _reaches_database(item)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    if not config.pluginmanager.hasplugin("xdist"):
        return
    shared_cluster_modules = {
        item.path for item in items if _SHARED_CLUSTER_FIXTURE in getattr(item, "fixturenames", ())
    }
    for item in items:
        parts = _parts(item)
        if item.path in shared_cluster_modules:
            item.add_marker(pytest.mark.xdist_group("cluster"))
        elif len(parts) > 2 and parts[0] == "tests" and parts[1] in _MODULE_GROUPED_DIRS:
            item.add_marker(pytest.mark.xdist_group("/".join(parts)))


def _parts(item: pytest.Item) -> tuple[str, ...]:
    return item.path.relative_to(item.config.rootpath).parts


def _reaches_database(item: pytest.Item) -> bool:
    """Whether the test uses the test database, or runs processes on PostgreSQL (cluster)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    return (
        bool(fixtures & _DATABASE_FIXTURES)
        or item.get_closest_marker("django_db") is not None
        or _parts(item)[:2] == ("tests", "cluster")
    )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A PostgreSQL test database of this run alone: `test_<name>[_gwN]_<pid>`.

    pytest-django already suffixes it per xdist worker; the pid keeps two runs against one
    server (two checkouts, two engineers) apart, as SQLite's per-process file does.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" in database["ENGINE"]:
        test = database.setdefault("TEST", {})
        test["NAME"] = f"{test.get('NAME') or 'test_' + database['NAME']}_{os.getpid()}"


@pytest.fixture(autouse=True)
def _fresh_failed_auth_throttle() -> Iterator[None]:
    """Failed authentications are counted per address for the whole process: per test here."""
    from accounts.auth_throttle import failed_auth_throttle

    failed_auth_throttle().clear()
    yield
    failed_auth_throttle().clear()


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    """Token lookups are cached for the whole process: per test here."""
    from accounts.token_lookups import token_cache

    token_cache().clear()
    yield
    token_cache().clear()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
async def dispatch(redis_url: str) -> AsyncIterator[Dispatch]:
    """The dispatch streams on the real Redis, under a key prefix of this test's (its keys
    deleted after)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    streams = Dispatch(client, prefix=f"test-dispatch-{uuid4().hex}", queue_bound=100)
    try:
        yield streams
    finally:
        keys = [key async for key in client.scan_iter(f"{streams.prefix}:*")]
        if keys:
            await client.delete(*keys)
        await streams.close()


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
