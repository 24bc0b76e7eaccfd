"""Migrated template databases, made once per test run and copied for every deployment.

`migrate` is a Django start-up and seconds of work; every deployment of a run (one per xdist
worker, the cluster, the modules with an installation of their own) starts instead from a copy
of a database that `manage.py migrate` made once: SQLite copies the file (the backup API, so
a WAL is included), PostgreSQL runs `CREATE DATABASE ... TEMPLATE`. The first process of the
run that needs a template makes it, under a file lock in the run's directory; the others wait
for it and copy. The run's directory is made by the controller (the only process of a run
without xdist) and handed to the xdist workers; the controller drops the PostgreSQL templates
when the run ends. Nothing here imports Django.
"""

import fcntl
import hashlib
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.e2e.support import (
    SQLITE_BUSY_TIMEOUT,
    Deployment,
    base_child_env,
    create_postgres_database,
    database_url_for,
    drop_postgres_database,
)

SQLITE_FILE = "db.sqlite3"
_RUN_DIR_KEY = "mcp_test_run_dir"
_RUN_DIR = pytest.StashKey[Path]()
_POSTGRES_RECORD = "postgres-template-*.json"


@dataclass(frozen=True)
class DatabaseTemplates:
    """The migrated templates of one test run, made on first use."""

    run_dir: Path

    def copy_sqlite(self, var_dir: Path) -> None:
        """Put a migrated SQLite database in `var_dir` (where a deployment's settings look)."""
        template = self._sqlite_template()
        with (
            closing(sqlite3.connect(template, timeout=SQLITE_BUSY_TIMEOUT)) as source,
            closing(sqlite3.connect(var_dir / SQLITE_FILE)) as copy,
        ):
            source.backup(copy)

    def create_postgres(self, server_url: str) -> str:
        """Create a fresh, uniquely named migrated database on the server of `server_url`;
        its name (drop it with `drop_postgres_database`)."""
        template = self._postgres_template(server_url)
        return create_postgres_database(server_url, template=template)

    def _sqlite_template(self) -> Path:
        root = self.run_dir / "sqlite"
        with self._locked("sqlite"):
            if not (root / SQLITE_FILE).is_file():
                root.mkdir(exist_ok=True)
                Deployment(root=root, env=base_child_env(root, None)).migrate()
                assert (root / SQLITE_FILE).is_file(), "migrate did not write the SQLite file"
        return root / SQLITE_FILE

    def _postgres_template(self, server_url: str) -> str:
        key = hashlib.sha256(server_url.encode()).hexdigest()[:12]
        record = self.run_dir / f"postgres-template-{key}.json"
        with self._locked(f"postgres-{key}"):
            if record.is_file():
                return str(json.loads(record.read_text())["name"])
            name = create_postgres_database(server_url)
            url = database_url_for(server_url, name)
            root = self.run_dir / f"postgres-{key}"
            root.mkdir()
            try:
                Deployment(root=root, env=base_child_env(root, url), database_name=name).migrate()
                with psycopg.connect(url) as conn:
                    found = conn.execute("SELECT to_regclass('accounts_apitoken')").fetchone()
                assert found is not None and found[0] is not None, "migrate missed the template"
            except BaseException:
                drop_postgres_database(server_url, name)
                raise
            record.write_text(json.dumps({"server_url": server_url, "name": name}))
            return name

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Hold the run-wide lock `name` (other xdist workers of the run wait for it)."""
        with (self.run_dir / f"{name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def begin_run(config: pytest.Config) -> None:
    """Make the run's directory in the controller; in an xdist worker, take the one given."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[_RUN_DIR] = Path(workerinput[_RUN_DIR_KEY])
    else:
        config.stash[_RUN_DIR] = Path(tempfile.mkdtemp(prefix="mcp-test-run-"))


def hand_to_worker(config: pytest.Config, workerinput: dict[str, object]) -> None:
    """Give an xdist worker the run's directory (called by the controller)."""
    workerinput[_RUN_DIR_KEY] = str(config.stash[_RUN_DIR])


def end_run(config: pytest.Config) -> None:
    """In the controller: drop the run's PostgreSQL templates and remove its directory."""
    if hasattr(config, "workerinput") or _RUN_DIR not in config.stash:
        return
    run_dir = config.stash[_RUN_DIR]
    for record in run_dir.glob(_POSTGRES_RECORD):
        made = json.loads(record.read_text())
        drop_postgres_database(made["server_url"], made["name"])
    shutil.rmtree(run_dir, ignore_errors=True)


def of_run(config: pytest.Config) -> DatabaseTemplates:
    """The templates of the run `config` belongs to."""
    return DatabaseTemplates(config.stash[_RUN_DIR])
