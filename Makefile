# Two commands set everything up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# Each run makes test databases of its own (test_test_gw<N>_<pid>): two runs never collide.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
# Each suite runs on four xdist workers (most of the tests' time is waiting on server
# processes: with three, a fresh-clone `make test` kept 1.4 of the 2 cores busy, and four took
# the SQLite suite from 260 to 238 s); tests that share processes stay on one worker
# (tests/conftest.py).
TEST_WORKERS ?= 4
# More pytest options for both suites, e.g. PYTEST_ARGS=--durations=30.
PYTEST_ARGS ?=
PYTEST := $(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The official MCP conformance suite (conformance/package.json: the suite and Node 22, pinned
# by package-lock.json), installed into conformance/node_modules.
CONFORMANCE := conformance
CONFORMANCE_STAMP := $(CONFORMANCE)/node_modules/.installed-stamp
# More options for the suite, e.g. CONFORMANCE_ARGS="--scenario tools-call-elicitation", and
# the one revision to run (2025-11-25 or 2026-07-28; default: both).
CONFORMANCE_ARGS ?=
CONFORMANCE_REVISION ?=

.PHONY: install client-envs run cluster serve lint browser test test-envs test-sqlite test-postgres bench \
	bytecode clean \
	conformance conformance-server

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The official clients and the comparison servers, each in a pinned environment of its own
# (.client-envs/, clients/node/node_modules; see clients/envs.py). Built only when missing
# or when a lock changed; the tests and the benchmark build what they need themselves.
client-envs: install
	$(PY) -m clients.envs

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

# Everything on SQLite, tests/cluster included: its processes always run on PostgreSQL
# (TEST_POSTGRES_URL) and share one cluster on one xdist worker (tests/conftest.py), while the
# other workers run the rest.
test-sqlite: install bytecode
	env -u DATABASE_URL $(PYTEST)

# Only what reaches the database (--database-layers: tests using the test database), on
# PostgreSQL; the rest does not depend on the database, and tests/cluster ran above.
test-postgres: install bytecode
	DATABASE_URL=$(PG_TEST_URL) $(PYTEST) --database-layers --ignore=tests/cluster

# The project's bytecode, compiled before the suites: where PYTHONDONTWRITEBYTECODE is set
# (as where `make test` runs), every process a run starts (~100 serve, runoperations and
# manage.py processes, pool and history processes) otherwise compiles each module it imports
# from source, ~0.15 s of CPU a start-up (docs/BENCHMARKS.md, "Process boots").
bytecode:
	$(PY) -m compileall -q -j 0 -x /node_modules/ manage.py config accounts mcp_server console \
		example_tools conformance_fixtures clients tests

# The console's browser tests drive Debian's chromium. Install it when missing and possible;
# never fail here: without it those tests fail and say how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "make browser: could not install chromium (apt-get install -y chromium)" >&2

# What the suites need is made side by side (lint is CPU, the rest mostly network and disk),
# then the suites run one after the other.
test: install
	$(MAKE) --no-print-directory -j3 --output-sync=target lint browser test-envs
	$(MAKE) --no-print-directory test-sqlite test-postgres conformance

# The official clients the suite drives (tests/http/test_official_clients.py) and the
# conformance suite, built before the tests so that no test waits for npm or pip.
test-envs: install $(CONFORMANCE_STAMP)
	$(PY) -m clients.envs mcp-sdk node

$(CONFORMANCE_STAMP): $(CONFORMANCE)/package.json $(CONFORMANCE)/package-lock.json
	cd $(CONFORMANCE) && npm ci --no-audit --no-fund --loglevel=error
	touch $(CONFORMANCE_STAMP)

# A fresh server (SQLite, the conformance tenant served without a token), then every server
# scenario of 2025-11-25 (0.1.16, pending ones too) and the set 2026-07-28 requires
# (0.2.0-alpha.12) against it; fails on a failure not in that revision's
# conformance/expected-failures*.yml. One revision, or one scenario of it:
# make conformance CONFORMANCE_REVISION=2026-07-28 CONFORMANCE_ARGS="--scenario server-stateless".
conformance: install bytecode $(CONFORMANCE_STAMP)
	$(PY) $(CONFORMANCE)/run.py $(if $(CONFORMANCE_REVISION),--revision $(CONFORMANCE_REVISION)) \
		-- $(CONFORMANCE_ARGS)

# The same server on http://127.0.0.1:8765/mcp until Ctrl-C, to run the suite by hand, e.g.
# conformance/node_modules/.bin/node conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js server --url http://127.0.0.1:8765/mcp --scenario ping
conformance-server: install $(CONFORMANCE_STAMP)
	$(PY) $(CONFORMANCE)/run.py --serve --port 8765

bench: install
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(CONFORMANCE)/node_modules \
		$(CONFORMANCE)/results .client-envs clients/node/node_modules
