import os

import pytest

from tests.services import ensure_postgres, ensure_redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail early, and say how to fix it, when a service the suite needs is down."""
    problems = [ensure_redis(REDIS_URL)]
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        problems.append(ensure_postgres(database_url))
    messages = [problem for problem in problems if problem]
    if messages:
        pytest.exit("\n".join(messages), returncode=3)


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL
