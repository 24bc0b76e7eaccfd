"""Streamable HTTP against real servers of the e2e deployment (its fixtures, reused), with
their session records and events on the real Redis."""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from mcp_server.client.http import HttpSession
from tests.cli import fixtures
from tests.e2e.conftest import ServerFactory
from tests.e2e.support import Deployment, ServerProcess

# The channel layer and key prefix of this module's servers and of the commands that reach them.
CHANNEL_PREFIX = f"test-http-{secrets.token_hex(4)}"


def pytest_configure(config: pytest.Config) -> None:
    """Register the e2e fixtures (deployment, accounts, servers)."""
    fixtures.register(config)


@pytest.fixture
def redis_env(redis_url: str) -> dict[str, str]:
    """What puts a server (or a command) on the tests' Redis, under prefixes of their own."""
    return {"REDIS_URL": redis_url, "MCP_CHANNEL_PREFIX": CHANNEL_PREFIX}


@pytest.fixture
def operator(deployment: Deployment, redis_env: dict[str, str]) -> Deployment:
    """The deployment as an operator's commands see it: on the servers' channel layer."""
    return deployment.with_env(redis_env)


@dataclass(frozen=True)
class Member:
    """A user of a tenant of its own, with a token called `token_name`."""

    tenant: str
    username: str
    token: str
    token_name: str


@pytest.fixture(scope="module")
def member_pool(deployment: Deployment) -> list[Member]:
    """Fresh tenants with one user each, for tests that change accounts (one Django boot)."""
    # Enough for the module that takes the most (test_official_clients: 7), made in one boot.
    tags = [secrets.token_hex(3) for _ in range(10)]
    output = deployment.shell(
        "from accounts.services import tenant_create, token_create, user_create\n"
        f"for tag in {tags!r}:\n"
        "    tenant = tenant_create(slug=f'http-{tag}')\n"
        "    user = user_create(username=f'http-{tag}-u', tenant_slug=tenant.slug)\n"
        "    print(token_create(user=user, name=f'http-{tag}-t').raw)\n"
    )
    raws = output.split()[-len(tags) :]
    assert all(raw.startswith("mcp_") for raw in raws), output
    return [
        Member(f"http-{tag}", f"http-{tag}-u", raw, f"http-{tag}-t")
        for tag, raw in zip(tags, raws, strict=True)
    ]


@pytest.fixture
def member(member_pool: list[Member]) -> Member:
    """Accounts of this test alone."""
    assert member_pool, "more tests take a member than member_pool makes"
    return member_pool.pop()


@pytest.fixture
def served(server_factory: ServerFactory, redis_env: dict[str, str]) -> ServerProcess:
    """A server whose sessions and events are on Redis, with no anonymous tenant."""
    return server_factory(**redis_env)


def mcp_url(server: ServerProcess) -> str:
    """The Streamable HTTP endpoint of `server`."""
    return f"{server.http_url}/mcp"


@asynccontextmanager
async def http_session(
    server: ServerProcess, token: str | None, *, initialize: bool = True
) -> AsyncIterator[HttpSession]:
    """A client session with `server` (initialized unless asked not to), closed after."""
    session = HttpSession(mcp_url(server), token)
    try:
        if initialize:
            await session.initialize()
        yield session
    finally:
        await session.close()
