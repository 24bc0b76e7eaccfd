"""Fixtures that run the real service as an operator would: `manage.py` commands and servers.

One deployment (a temp var dir and a fresh database) is made per test session, a copy of the
run's template that `manage.py migrate` made (tests/e2e/templates.py); its accounts are made
with the account management commands, all in one `manage.py` process. Servers
are `manage.py serve` subprocesses on free ports: `server` is the shared default one, and
`server_factory(**env)` starts (once per distinct env) a server of the same deployment with
extra environment, e.g. `server_factory(MCP_TOOLS_PAGE_SIZE="2")`.

The database follows the test process's DATABASE_URL: a postgres:// URL makes a fresh database
`mcp_e2e_<hex>` on that PostgreSQL server, dropped at the end; anything else means SQLite in the
temp dir.
"""

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.e2e.support import (
    Deployment,
    ServerProcess,
    base_child_env,
    database_url_for,
    drop_postgres_database,
    is_postgres_url,
    run_parallel,
    start_server,
    stop_servers,
    tenant_command,
    token_command,
    user_command,
)
from tests.e2e.templates import DatabaseTemplates

ALPHA = "alpha"
BETA = "beta"
# A tenant whose settings tests may change (test_auth restricts its tools); nobody else uses it.
GAMMA = "gamma"
ALICE = "alice"
BOB = "bob"
CAROL = "carol"


@dataclass(frozen=True)
class Accounts:
    """The accounts of the deployment; tokens are the raw values `createtoken` printed."""

    alice_password: str
    # alice: admin of tenant alpha, with a password (for a browser session).
    alice: str
    alice_logs: str  # used by the log test only, so its request line is unambiguous
    alice_revoked: str
    alice_expired: str
    # bob: member of tenant beta.
    bob: str
    # carol: member of tenant gamma, the tenant whose settings tests change.
    carol: str

    def all_tokens(self) -> tuple[str, ...]:
        """Every raw token issued, for checks that none of them leaks."""
        return (
            self.alice,
            self.alice_logs,
            self.alice_revoked,
            self.alice_expired,
            self.bob,
            self.carol,
        )


@pytest.fixture(scope="session")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates
) -> Iterator[Deployment]:
    """A migrated installation in a temp dir, on a fresh database (a copy of the run's
    template)."""
    root = tmp_path_factory.mktemp("mcp-e2e")
    outer_url = os.environ.get("DATABASE_URL", "")
    if is_postgres_url(outer_url):
        database_name: str | None = database_templates.create_postgres(outer_url)
    else:
        database_name = None
        database_templates.copy_sqlite(root)
    child_url = database_url_for(outer_url, database_name) if database_name else None
    try:
        yield Deployment(
            root=root, env=base_child_env(root, child_url), database_name=database_name
        )
    finally:
        if database_name is not None:
            drop_postgres_database(outer_url, database_name)


class ServerFactory:
    """Servers of one deployment, one per distinct extra env, all stopped by `stop_all`.

    A server that died stays dead (a test must see it, not a silently restarted one).
    """

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._executor = ThreadPoolExecutor(thread_name_prefix="e2e-server-start")
        self._servers: dict[tuple[tuple[str, str], ...], Future[ServerProcess]] = {}

    def launch(self, **extra_env: str) -> None:
        """Start that server in the background (if not yet started), without waiting.

        Each server counts its REST and failed-authentication budgets under a cache prefix of
        its own: servers of one deployment share a Redis, and a test with a budget of 4 must
        not find it spent by another test's server in the same minute.
        """
        key = tuple(sorted(extra_env.items()))
        if key not in self._servers:
            prefix = f"{self._deployment.env['MCP_CACHE_PREFIX']}-{len(self._servers)}"
            env = {"MCP_CACHE_PREFIX": prefix, **extra_env}
            self._servers[key] = self._executor.submit(start_server, self._deployment, env)

    def __call__(self, **extra_env: str) -> ServerProcess:
        """The running server with `extra_env` on top of the deployment's env."""
        self.launch(**extra_env)
        return self._servers[tuple(sorted(extra_env.items()))].result()

    def stop_all(self) -> None:
        """Stop every server started, side by side (SIGTERM, then SIGKILL)."""
        futures = self._servers.values()
        stop_servers(future.result() for future in futures if future.exception() is None)
        self._executor.shutdown()


@pytest.fixture(scope="session")
def server_factory(deployment: Deployment) -> Iterator[ServerFactory]:
    """`server_factory(**env)`: a server of the deployment with extra env, e.g. a page size."""
    factory = ServerFactory(deployment)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def accounts(deployment: Deployment, server_factory: ServerFactory) -> Accounts:
    """Tenants, users and tokens, made by the management commands (in one process)."""
    server_factory.launch()  # the default server boots while the commands run
    password = "e2e-Correct-Horse-42"
    alice, alice_logs, alice_revoked, alice_expired, bob, carol = deployment.run_together(
        [
            tenant_command(ALPHA),
            tenant_command(BETA),
            tenant_command(GAMMA),
            user_command(ALICE, ALPHA, admin=True, password=password),
            user_command(BOB, BETA),
            user_command(CAROL, GAMMA),
            token_command(ALICE, name="alice-main"),
            token_command(ALICE, name="alice-logs"),
            token_command(ALICE, name="alice-revoked"),
            token_command(ALICE, name="alice-expired", expires_in_days=1),
            token_command(BOB, name="bob-main"),
            token_command(CAROL, name="carol-main"),
        ]
    )[6:]
    run_parallel(
        [
            lambda: deployment.revoke_token("alice-revoked"),
            lambda: deployment.expire_token("alice-expired"),
        ]
    )
    return Accounts(
        alice_password=password,
        alice=alice,
        alice_logs=alice_logs,
        alice_revoked=alice_revoked,
        alice_expired=alice_expired,
        bob=bob,
        carol=carol,
    )


@pytest.fixture(scope="session")
def server(server_factory: ServerFactory) -> ServerProcess:
    """The shared server with the default settings."""
    return server_factory()
