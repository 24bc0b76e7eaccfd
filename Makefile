# Two commands set everything up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# Each run makes test databases of its own (test_test_gw<N>_<pid>): two runs never collide.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
# Each suite runs on both cores; tests that share processes stay on one worker (tests/conftest.py).
TEST_WORKERS ?= 2
# More pytest options for both suites, e.g. PYTEST_ARGS=--durations=30.
PYTEST_ARGS ?=
PYTEST := $(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

.PHONY: install run cluster serve lint browser test test-sqlite test-postgres bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# Two web processes (:8001, :8002) and WORKERS workers (default 1) on Redis (REDIS_URL, default
# redis://127.0.0.1:6379/0) and DATABASE_URL, under supervisord: a process that exits is
# restarted, Ctrl-C stops them all. See docs/operations.md.
WORKERS ?= 1
cluster: install
	$(PY) manage.py runcluster --workers $(WORKERS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# Everything but tests/cluster, on SQLite. tests/cluster always runs its processes on
# PostgreSQL: once, in the PostgreSQL run, is enough.
test-sqlite: install
	env -u DATABASE_URL $(PYTEST) --ignore=tests/cluster

# Only what reaches the database (--database-layers: tests using the test database, and
# tests/cluster), on PostgreSQL; the rest does not depend on the database.
test-postgres: install
	DATABASE_URL=$(PG_TEST_URL) $(PYTEST) --database-layers

# The console's browser tests drive Debian's chromium. Install it when missing and possible;
# never fail here: without it those tests fail and say how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "make browser: could not install chromium (apt-get install -y chromium)" >&2

test: lint browser test-sqlite test-postgres

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
