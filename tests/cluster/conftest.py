"""One cluster for the test session: its own database, Redis key prefix, accounts and processes."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cluster.support import Cluster, worker_mode_deployment
from tests.e2e.support import Deployment, tenant_command, token_command, user_command
from tests.e2e.templates import DatabaseTemplates


@dataclass(frozen=True)
class ClusterAccounts:
    """Raw tokens: alice and alan share tenant alpha; bob is alone in tenant beta."""

    alice: str
    alice_second: str
    alan: str
    bob: str


@pytest.fixture(scope="session")
def cluster_deployment(
    tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates
) -> Iterator[Deployment]:
    """A migrated installation on a fresh PostgreSQL database (clusters always use one)."""
    root = tmp_path_factory.mktemp("mcp-cluster")
    with worker_mode_deployment(root, database_templates) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def cluster_accounts(cluster_deployment: Deployment) -> ClusterAccounts:
    """Tenants, users and tokens made by the management commands (in one process)."""
    alice, alice_second, alan, bob = cluster_deployment.run_together(
        [
            tenant_command("alpha"),
            tenant_command("beta"),
            user_command("alice", "alpha", admin=True),
            user_command("alan", "alpha"),
            user_command("bob", "beta"),
            token_command("alice", name="alice-1"),
            token_command("alice", name="alice-2"),
            token_command("alan", name="alan-1"),
            token_command("bob", name="bob-1"),
        ]
    )[5:]
    return ClusterAccounts(alice=alice, alice_second=alice_second, alan=alan, bob=bob)


@pytest.fixture(scope="session")
def running_cluster(
    cluster_deployment: Deployment, cluster_accounts: ClusterAccounts
) -> Iterator[Cluster]:
    """Two web processes and a worker, for the whole session; their per-tenant metrics carry
    the tenant, so a test reads its own tenant's series whatever other tests ran."""
    cluster = Cluster(deployment=cluster_deployment, env={"MCP_METRICS_TENANT_LABEL": "true"})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(running_cluster: Cluster) -> Cluster:
    """The cluster, with anything a previous test stopped or killed started again."""
    running_cluster.ensure_running()
    return running_cluster
