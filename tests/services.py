"""Make sure the real PostgreSQL and Redis the tests use are up, starting them if we can."""

import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

POLL_INTERVAL = 0.2
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_reachable(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _reachable(host, port):
            return True
        time.sleep(POLL_INTERVAL)
    return False


def _ensure(name: str, host: str, port: int, start: str, binary: str) -> str | None:
    """None when the service answers (after starting it if needed), else how to start it."""
    if _reachable(host, port):
        return None
    if shutil.which(binary) and Path("/etc").exists():
        subprocess.run(start, shell=True, check=False, capture_output=True)
        if _wait_reachable(host, port, 20):
            return None
    return f"{name} is not reachable at {host}:{port}. Start it with:\n    {start}"


def ensure_postgres(url: str) -> str | None:
    """Check (or start) the PostgreSQL server of a postgres:// URL."""
    parsed = urlparse(url)
    return _ensure(
        "PostgreSQL",
        parsed.hostname or "127.0.0.1",
        parsed.port or 5432,
        START_POSTGRES,
        "pg_ctlcluster",
    )


def ensure_redis(url: str) -> str | None:
    """Check (or start) the Redis server of a redis:// URL."""
    parsed = urlparse(url)
    return _ensure(
        "Redis", parsed.hostname or "127.0.0.1", parsed.port or 6379, START_REDIS, "redis-server"
    )
