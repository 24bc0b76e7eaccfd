"""Settings, all read from the environment with embedded defaults for a laptop run.

Unset `DATABASE_URL` means a SQLite file under var/; unset `REDIS_URL` means the in-memory
channel layer (a single process). Production sets both, plus `SECRET_KEY` and `ALLOWED_HOSTS`.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("MCP_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()


def _local_secret_key() -> str:
    """A per-checkout random key kept in var/, so a laptop run needs no configuration."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Before django.contrib.staticfiles, so that `runserver` is daphne's (config/daphne_app.py).
    "config.daphne_app.DaphneRunserverConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "axes",
    "accounts",
    "mcp_server",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A dependency that is down (Redis, the database) is a 503 with a reason, not a 500.
    "mcp_server.health.DependencyFailureMiddleware",
    # Last, as django-axes requires: turns a locked-out login into a 429.
    "axes.middleware.AxesMiddleware",
]
# django-axes first: it refuses a locked-out username+address before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
# Persistent connections: authenticating a WebSocket costs one query, not a connection setup.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers (admin, API) run beside the writer; IMMEDIATE avoids lock upgrades
    # that fail with "database is locked" under concurrent writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests get a file too: an in-memory database's shared cache locks whole tables and fails
    # at once ("database table is locked") when the history writer and a request overlap.
    # One per test process, so two test runs never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Several deployments may share one Redis: each keeps to its own key prefix (the channel
# layer's and the dispatch streams', mcp_server/cluster/dispatch.py).
MCP_CHANNEL_PREFIX = env.str("MCP_CHANNEL_PREFIX", default="asgi")
# redis-py 8.1's asyncio pool stops at 100 connections and then raises MaxConnectionsError,
# which kills the consumer that hit it.
MCP_REDIS_MAX_CONNECTIONS = env.int("MCP_REDIS_MAX_CONNECTIONS", default=2000)
# Seconds a dependency (Redis, the database) gets to answer a readiness probe, to connect, and
# (the cache) to answer a command; past it, it counts as down and clients get a 503.
MCP_DEPENDENCY_TIMEOUT = env.float("MCP_DEPENDENCY_TIMEOUT", default=2.0)
# Seconds an undelivered channel-layer message lives (then it is dropped, unread).
MCP_CHANNEL_EXPIRY = env.int("MCP_CHANNEL_EXPIRY", default=60)
if REDIS_URL:
    # Here, not at the top: a process without Redis (a laptop run, most tests) never needs it.
    import redis.asyncio.retry
    import redis.backoff
    import redis.retry

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 defaults socket_timeout to 5 s, the same as channels-redis's
                        # blocking pop: an idle consumer would die with TimeoutError (close 1011).
                        "socket_timeout": None,
                        "socket_connect_timeout": MCP_DEPENDENCY_TIMEOUT,
                        # Once more on a fresh connection: after Redis restarts, each pooled
                        # connection fails its next command (then an outage is ridden out).
                        "retry": redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 1),
                        "max_connections": MCP_REDIS_MAX_CONNECTIONS,
                    }
                ],
                # capacity is per process for all its consumers, and group_send silently drops
                # over it: size it for the connections of one process. Nothing that must
                # arrive (a result, a terminal status) relies on the layer alone.
                "capacity": env.int("MCP_CHANNEL_CAPACITY", default=5000),
                "prefix": MCP_CHANNEL_PREFIX,
                "expiry": MCP_CHANNEL_EXPIRY,
            },
        }
    }
else:
    # One process: tasks' events still cross the layer (to whichever connection listens).
    # Channels' in-memory layer with expiry found in O(log N), not by scanning every channel
    # (mcp_server/channel_layers.py): reconnecting clients cost the same at 10 or 10,000.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "mcp_server.channel_layers.ExpiringInMemoryChannelLayer",
            "CONFIG": {"capacity": env.int("MCP_CHANNEL_CAPACITY", default=5000)},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.drf_auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's three, with a JSON parser that answers a too deeply nested body with 400.
    "DEFAULT_PARSER_CLASSES": [
        "mcp_server.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["mcp_server.api.throttles.PrincipalRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- MCP service --------------------------------------------------------------------------
MCP_SERVER_NAME = env.str("MCP_SERVER_NAME", default="mcp-realtime")
MCP_SERVER_TITLE = env.str("MCP_SERVER_TITLE", default="MCP Realtime")
# Origins whose pages may open /mcp with the Django session cookie. Token clients send none.
# Empty (the default): the same origin only, the scheme, host and port the handshake was
# addressed to (its Host in ALLOWED_HOSTS), so the console works on whatever port is served.
MCP_ALLOWED_ORIGINS = env.list("MCP_ALLOWED_ORIGINS", default=[])
# Largest text frame accepted; larger ones close the socket with 1009 (the server enforces it
# too, before a frame is buffered whole).
MCP_MAX_MESSAGE_BYTES = env.int("MCP_MAX_MESSAGE_BYTES", default=1024 * 1024)
MCP_TOOLS_PAGE_SIZE = env.int("MCP_TOOLS_PAGE_SIZE", default=50)
# 2026-07-28 caching hint: how long (ms) a client may keep server/discover and the lists
# (tools, prompts, resources, templates) fresh; list changes are announced meanwhile.
MCP_CACHE_TTL_MS = env.int("MCP_CACHE_TTL_MS", default=60_000)
if MCP_CACHE_TTL_MS < 0:
    raise ImproperlyConfigured("MCP_CACHE_TTL_MS must be 0 or more (milliseconds)")

# --- Streamable HTTP at /mcp (docs/operations.md, "Streamable HTTP") -----------------------
# A session with no request for this long ends (its GET stream keeps it alive).
MCP_HTTP_SESSION_IDLE_SECONDS = env.int("MCP_HTTP_SESSION_IDLE_SECONDS", default=3600)
# Live HTTP sessions a user and a tenant may hold (all web processes together; 0: unbounded).
MCP_HTTP_SESSIONS_PER_USER = env.int("MCP_HTTP_SESSIONS_PER_USER", default=32)
MCP_HTTP_SESSIONS_PER_TENANT = env.int("MCP_HTTP_SESSIONS_PER_TENANT", default=1000)
# Events kept per SSE stream for resumption (approximately: Redis trims in whole nodes), and
# how long a stream's events are kept after its last one.
MCP_HTTP_EVENTS_PER_STREAM = env.int("MCP_HTTP_EVENTS_PER_STREAM", default=1000)
MCP_HTTP_EVENT_RETENTION_SECONDS = env.int("MCP_HTTP_EVENT_RETENTION_SECONDS", default=300)
# The slug of a tenant whose tools anyone may call over HTTP without a token (public demo
# servers, the conformance suite); empty (the default): every request needs a token.
MCP_ANONYMOUS_TENANT = env.str("MCP_ANONYMOUS_TENANT", default="")
# last_used_at of a token is written at most this often (seconds), never per message.
MCP_TOKEN_TOUCH_INTERVAL = env.int("MCP_TOKEN_TOUCH_INTERVAL", default=60)
# WebSocket protocol pings of the server (transport level, not MCP ping).
MCP_WS_PING_INTERVAL = env.float("MCP_WS_PING_INTERVAL", default=20.0)
MCP_WS_PING_TIMEOUT = env.float("MCP_WS_PING_TIMEOUT", default=20.0)
# permessage-deflate costs ~42 KiB per connection and 10-40 % throughput: off unless asked.
MCP_WS_PER_MESSAGE_DEFLATE = env.bool("MCP_WS_PER_MESSAGE_DEFLATE", default=False)

# --- Logs and metrics (issue 15) ----------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "plain" (the default: one readable line per record) or "json": one JSON object per line with
# time, level, logger, message and, where known, tenant, user, connection, request and
# operation ids and the W3C traceparent the request carried (config/log_json.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "config.log_redaction.RedactSecretsFilter"},
        "log_context": {"()": "config.log_context.LogContextFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.log_json.JsonLineFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_secrets", "log_context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "uvicorn": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "daphne": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.server": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
# Prometheus metrics (mcp_server/metrics.py). Off: nothing is recorded and /metrics is 404.
# Several processes add up when PROMETHEUS_MULTIPROC_DIR names one directory for all of them
# (emptied before they start; `manage.py runcluster` does it); docs/operations.md.
MCP_METRICS = env.bool("MCP_METRICS", default=True)
# Who may scrape /metrics: clients from these addresses or networks (CIDR), or anyone sending
# `Authorization: Bearer <MCP_METRICS_TOKEN>` when that is set. Default: this host only.
MCP_METRICS_ALLOWED_NETWORKS = env.list(
    "MCP_METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"]
)
MCP_METRICS_TOKEN = env.str("MCP_METRICS_TOKEN", default="")
# A `tenant` label (the tenant's slug) on connection, request, tool-call and refusal metrics:
# one series per tenant, so off unless the operator asks.
MCP_METRICS_TENANT_LABEL = env.bool("MCP_METRICS_TENANT_LABEL", default=False)
# --- end of logs and metrics ---------------------------------------------------------------

# --- Operations ---------------------------------------------------------------------------
# Concurrent operations; beyond these, calls wait in a fair queue (round robin across the
# users of a tenant and across tenants) and say so through progress.
MCP_MAX_OPERATIONS_PER_CONNECTION = env.int("MCP_MAX_OPERATIONS_PER_CONNECTION", default=4)
MCP_MAX_OPERATIONS_PER_USER = env.int("MCP_MAX_OPERATIONS_PER_USER", default=8)
MCP_MAX_OPERATIONS_PER_TENANT = env.int("MCP_MAX_OPERATIONS_PER_TENANT", default=32)
MCP_MAX_OPERATIONS = env.int("MCP_MAX_OPERATIONS", default=64)
# notifications/progress per second per operation, at most (first and last always sent).
MCP_PROGRESS_MAX_RATE = env.float("MCP_PROGRESS_MAX_RATE", default=10.0)
# History: batch writes every FLUSH_INTERVAL s; a running operation's progress every
# PROGRESS_INTERVAL s at most.
MCP_HISTORY_FLUSH_INTERVAL = env.float("MCP_HISTORY_FLUSH_INTERVAL", default=0.25)
MCP_HISTORY_PROGRESS_INTERVAL = env.float("MCP_HISTORY_PROGRESS_INTERVAL", default=1.0)
# --- history on and off (issue 16) --------------------------------------------------------
# False: plain tool calls leave no history row (tasks and calls handed to workers still do:
# their rows carry the protocol's state). For measuring what history costs; keep it on.
MCP_HISTORY_ENABLED = env.bool("MCP_HISTORY_ENABLED", default=True)
# --- end of history on and off ------------------------------------------------------------
# PostgreSQL: the rows of ended calls (most of history) commit without waiting for the disk
# (synchronous_commit off for them only): read at once by every process as before, but a
# crash of the database server may lose the last ~0.6 s of them. Task states, item errors and
# every guarded transition always commit synchronously. False: every history write waits.
MCP_HISTORY_ASYNCHRONOUS_COMMIT = env.bool("MCP_HISTORY_ASYNCHRONOUS_COMMIT", default=True)
# Where history is written: "thread", a thread of this process (the default), or "process",
# a writer process of its own fed through a pipe (the event loop's process only hands over
# snapshots, and shares no GIL with the writer; worth it where the writer gets a core of its
# own, see MCP_HISTORY_WRITER_CPUS: on the server's own core it costs more CPU per call).
MCP_HISTORY_WRITER = env.str("MCP_HISTORY_WRITER", default="thread")
# States and item errors queued for the writer, at most; past it new ones are dropped (logged,
# counted as mcp_history_write_failures{kind="full"}).
MCP_HISTORY_QUEUE_LIMIT = env.int("MCP_HISTORY_QUEUE_LIMIT", default=200_000)
# CPUs the writer process runs on (e.g. "1" or "2-3"); empty: those of the server.
MCP_HISTORY_WRITER_CPUS = env.str("MCP_HISTORY_WRITER_CPUS", default="")
# History keeps a call's arguments, and its result (summary, error text, a task's whole
# result), up to these many bytes of JSON each; beyond, a preview and the original size.
MCP_HISTORY_MAX_ARGUMENTS_BYTES = env.int("MCP_HISTORY_MAX_ARGUMENTS_BYTES", default=64 * 1024)
MCP_HISTORY_MAX_RESULT_BYTES = env.int("MCP_HISTORY_MAX_RESULT_BYTES", default=64 * 1024)
# Whether there are workers: "inline", every call runs in the web process that holds the socket
# (one process, the embedded default); "worker": each tool runs where its placement says, short
# ones in the web process, the others handed to `manage.py runoperations` processes through the
# channel layer, so deploys of web processes do not stop running work (mcp_server/placement.py).
MCP_EXECUTION = env.str("MCP_EXECUTION", default="inline")
if MCP_EXECUTION not in ("inline", "worker"):
    raise ImproperlyConfigured("MCP_EXECUTION must be 'inline' or 'worker'")
if MCP_EXECUTION == "worker" and not REDIS_URL:
    raise ImproperlyConfigured(
        "MCP_EXECUTION=worker needs REDIS_URL: workers are reached via Redis"
    )
# Where chosen tools run, overriding their declaration: TOOL=PLACEMENT pairs, comma separated,
# each auto, local or worker (e.g. "add=worker,process_images=local"); checked at start-up
# against the tools loaded (mcp_server/placement.py). Empty: every tool as it declares.
MCP_TOOL_PLACEMENT = env.str("MCP_TOOL_PLACEMENT", default="")
# An operation whose process died (kill -9, lost host) is marked interrupted, and its client
# told, within this many seconds. Running processes heartbeat their operations at a sixth of it.
MCP_OPERATION_LOST_AFTER = env.float("MCP_OPERATION_LOST_AFTER", default=15.0)
# A worker is stamped alive from a thread of its own (mcp_server/cluster/keepalive.py), so an
# event loop that gets no turn for a while (a busy or CPU-starved process) keeps its calls;
# once its loop has had no turn for this many seconds (hung), it is stamped no more and its
# calls are given up (run again when idempotent, else interrupted) within this plus
# MCP_OPERATION_LOST_AFTER of that last turn. A worker that dies: within MCP_OPERATION_LOST_AFTER.
MCP_WORKER_HUNG_AFTER = env.float("MCP_WORKER_HUNG_AFTER", default=2 * MCP_OPERATION_LOST_AFTER)
if MCP_WORKER_HUNG_AFTER <= 0:
    raise ImproperlyConfigured("MCP_WORKER_HUNG_AFTER must be more than 0 (seconds)")
# A call handed to workers that none has taken after this many seconds is interrupted (its
# client told). A plain call on the dispatch streams waits as long as some worker is alive
# (busy workers take calls late, never lose them); a task's queued row is reaped by age alone,
# so keep this above the longest backlog of tasks you expect.
MCP_OPERATION_UNCLAIMED_AFTER = env.float(
    "MCP_OPERATION_UNCLAIMED_AFTER", default=float(MCP_CHANNEL_EXPIRY)
)
# Calls of one tenant waiting in Redis for a worker (mcp_server/cluster/dispatch.py), at most;
# past it a call is refused at once with an error saying so.
MCP_DISPATCH_QUEUE_PER_TENANT = env.int("MCP_DISPATCH_QUEUE_PER_TENANT", default=10_000)
if MCP_DISPATCH_QUEUE_PER_TENANT < 1:
    raise ImproperlyConfigured("MCP_DISPATCH_QUEUE_PER_TENANT must be at least 1")
# Fan-out (`ctx.fan_out`, mcp_server/runtime/fanout.py): a call's items run in chunks of
# CHUNK_SIZE items by default (a tool may ask for 1 to MAX_CHUNK_SIZE), at most
# CHUNKS_IN_FLIGHT chunks of one call at a time (the rest wait, so other calls' chunks get
# their turn), at most MAX_ITEMS items per call. PROCESSES: the pool of processes each process
# runs chunks in (0: one per core). A chunk whose worker died is run again at most ATTEMPTS
# times in all (idempotent tools only; the others end interrupted).
MCP_FANOUT_CHUNK_SIZE = env.int("MCP_FANOUT_CHUNK_SIZE", default=64)
MCP_FANOUT_MAX_CHUNK_SIZE = env.int("MCP_FANOUT_MAX_CHUNK_SIZE", default=10_000)
MCP_FANOUT_CHUNKS_IN_FLIGHT = env.int("MCP_FANOUT_CHUNKS_IN_FLIGHT", default=8)
MCP_FANOUT_MAX_ITEMS = env.int("MCP_FANOUT_MAX_ITEMS", default=1_000_000)
MCP_FANOUT_PROCESSES = env.int("MCP_FANOUT_PROCESSES", default=0)
MCP_FANOUT_CHUNK_ATTEMPTS = env.int("MCP_FANOUT_CHUNK_ATTEMPTS", default=3)
if not 1 <= MCP_FANOUT_CHUNK_SIZE <= MCP_FANOUT_MAX_CHUNK_SIZE:
    raise ImproperlyConfigured("MCP_FANOUT_CHUNK_SIZE must be between 1 and MAX_CHUNK_SIZE")
if min(MCP_FANOUT_CHUNKS_IN_FLIGHT, MCP_FANOUT_MAX_ITEMS, MCP_FANOUT_CHUNK_ATTEMPTS) < 1:
    raise ImproperlyConfigured("MCP_FANOUT_CHUNKS_IN_FLIGHT, _MAX_ITEMS, _CHUNK_ATTEMPTS: >= 1")
if MCP_FANOUT_PROCESSES < 0:
    raise ImproperlyConfigured("MCP_FANOUT_PROCESSES must be 0 (one per core) or more")
# A worker on SIGTERM lets running operations finish this long before interrupting them.
MCP_WORKER_GRACE = env.float("MCP_WORKER_GRACE", default=30.0)
# A web process on SIGTERM closes its sockets (1012) and exits within this many seconds.
MCP_SHUTDOWN_TIMEOUT = env.float("MCP_SHUTDOWN_TIMEOUT", default=10.0)
# `manage.py serve` freezes the survivors of each full garbage collection while connections
# pile up (mcp_server/survivor_freezer.py), so a reconnect storm's collections do not walk every
# open connection; off, only the start-up heap is frozen.
MCP_GC_FREEZE_SURVIVORS = env.bool("MCP_GC_FREEZE_SURVIVORS", default=True)
# MCP-level heartbeat: a connection idle this long gets a `ping`, and is closed (4408) when no
# message arrives within the timeout after it. The WebSocket protocol pings stay on too.
MCP_CLIENT_PING_INTERVAL = env.float("MCP_CLIENT_PING_INTERVAL", default=30.0)
MCP_CLIENT_PING_TIMEOUT = env.float("MCP_CLIENT_PING_TIMEOUT", default=15.0)
# Requests of the server to a client (a tool's elicitation or sampling): how long one waits
# for the client's answer (seconds; a person may be typing), and how many may wait at once
# per connection (past it, the tool's request fails at once).
MCP_CLIENT_REQUEST_TIMEOUT = env.float("MCP_CLIENT_REQUEST_TIMEOUT", default=300.0)
MCP_CLIENT_REQUESTS_PER_CONNECTION = env.int("MCP_CLIENT_REQUESTS_PER_CONNECTION", default=16)
# 2026-07-28 input-required results: how long (seconds) the signed `requestState` of one may
# be echoed in the client's retry; a person may be answering.
MCP_INPUT_STATE_TTL = env.int("MCP_INPUT_STATE_TTL", default=900)
# Access taken away (token revoked or expired, user or tenant deactivated, a tool disabled)
# reaches open connections at once through the channel layer; every web process also re-checks
# its connections' callers this often (seconds), catching expiry and lost announcements.
MCP_ACCESS_CHECK_INTERVAL = env.float("MCP_ACCESS_CHECK_INTERVAL", default=4.0)
# Who a token is, kept per web process so a request or handshake with a known token costs no
# query (accounts/token_lookups.py): for this many seconds at most (never past the token's
# expiry; 0: nothing kept), and for this many tokens at most. Announced access changes drop
# entries at once; the time bound is what a lost announcement costs, so it may not exceed
# the re-check interval.
MCP_TOKEN_CACHE_SECONDS = env.float(
    "MCP_TOKEN_CACHE_SECONDS", default=min(4.0, MCP_ACCESS_CHECK_INTERVAL)
)
MCP_TOKEN_CACHE_ENTRIES = env.int("MCP_TOKEN_CACHE_ENTRIES", default=10_000)
if not 0 <= MCP_TOKEN_CACHE_SECONDS <= MCP_ACCESS_CHECK_INTERVAL:
    raise ImproperlyConfigured(
        "MCP_TOKEN_CACHE_SECONDS must be between 0 and MCP_ACCESS_CHECK_INTERVAL "
        f"({MCP_ACCESS_CHECK_INTERVAL:g})"
    )
if MCP_TOKEN_CACHE_ENTRIES < 0:
    raise ImproperlyConfigured("MCP_TOKEN_CACHE_ENTRIES must not be negative")
# Durable tasks: ttl granted when a client asks for none, the most granted, and the polling
# interval suggested to clients (all milliseconds).
MCP_TASK_DEFAULT_TTL = env.int("MCP_TASK_DEFAULT_TTL", default=24 * 3600 * 1000)
MCP_TASK_MAX_TTL = env.int("MCP_TASK_MAX_TTL", default=7 * 24 * 3600 * 1000)
MCP_TASK_POLL_INTERVAL = env.int("MCP_TASK_POLL_INTERVAL", default=1000)
MCP_TASKS_PAGE_SIZE = env.int("MCP_TASKS_PAGE_SIZE", default=50)
# Resources and prompts (docs/resources.md): page sizes of their lists; entries one read of
# an error log or a directory gives (the REST API's download has the whole log); the largest
# file (a thumbnail) one read gives, in bytes.
MCP_RESOURCES_PAGE_SIZE = env.int("MCP_RESOURCES_PAGE_SIZE", default=50)
MCP_PROMPTS_PAGE_SIZE = env.int("MCP_PROMPTS_PAGE_SIZE", default=50)
MCP_RESOURCE_MAX_ENTRIES = env.int("MCP_RESOURCE_MAX_ENTRIES", default=1000)
MCP_RESOURCE_MAX_BYTES = env.int("MCP_RESOURCE_MAX_BYTES", default=4 * 1024 * 1024)
# Resources one session may subscribe to at once; past it resources/subscribe is -32001.
MCP_MAX_SUBSCRIPTIONS_PER_SESSION = env.int("MCP_MAX_SUBSCRIPTIONS_PER_SESSION", default=100)
# notifications/resources/updated of one run reach a subscriber at most once per this many
# seconds (its end at once): a run reporting thousands of items a second costs one a second.
MCP_RESOURCE_UPDATE_INTERVAL = env.float("MCP_RESOURCE_UPDATE_INTERVAL", default=1.0)
# subscriptions/listen (2026-07-28): open listens per connection and per user (this process;
# past either the listen is -32001), URIs (and task ids) one listen may name (past it
# -32602), and the idle time after which an HTTP listen stream gets a `:` keep-alive comment.
MCP_LISTENS_PER_CONNECTION = env.int("MCP_LISTENS_PER_CONNECTION", default=16)
MCP_LISTENS_PER_USER = env.int("MCP_LISTENS_PER_USER", default=64)
MCP_LISTEN_MAX_ENTRIES = env.int("MCP_LISTEN_MAX_ENTRIES", default=100)
MCP_LISTEN_KEEPALIVE_SECONDS = env.float("MCP_LISTEN_KEEPALIVE_SECONDS", default=15.0)
if MCP_LISTEN_KEEPALIVE_SECONDS <= 0:
    raise ImproperlyConfigured("MCP_LISTEN_KEEPALIVE_SECONDS must be more than 0 (seconds)")
# --- Tenant isolation (docs/SECURITY.md) ---------------------------------------------------
# Defaults for every tenant; the admin overrides them per tenant (accounts/limits.py). Counts
# of connections and message rates are per web process. Benchmarks raise them explicitly.
MCP_MAX_CONNECTIONS_PER_USER = env.int("MCP_MAX_CONNECTIONS_PER_USER", default=100)
MCP_MAX_CONNECTIONS_PER_TENANT = env.int("MCP_MAX_CONNECTIONS_PER_TENANT", default=1000)
# Requests running or queued; past these a request is refused at once instead of queued.
MCP_MAX_IN_FLIGHT_PER_CONNECTION = env.int("MCP_MAX_IN_FLIGHT_PER_CONNECTION", default=256)
MCP_MAX_IN_FLIGHT_PER_USER = env.int("MCP_MAX_IN_FLIGHT_PER_USER", default=1024)
MCP_MAX_IN_FLIGHT_PER_TENANT = env.int("MCP_MAX_IN_FLIGHT_PER_TENANT", default=4096)
# WebSocket messages per second (token bucket: sustained rate and burst).
MCP_MESSAGE_RATE_PER_USER = env.float("MCP_MESSAGE_RATE_PER_USER", default=100.0)
MCP_MESSAGE_BURST_PER_USER = env.int("MCP_MESSAGE_BURST_PER_USER", default=200)
MCP_MESSAGE_RATE_PER_TENANT = env.float("MCP_MESSAGE_RATE_PER_TENANT", default=1000.0)
MCP_MESSAGE_BURST_PER_TENANT = env.int("MCP_MESSAGE_BURST_PER_TENANT", default=2000)
# REST requests per minute, per user (whatever token it uses) and per tenant.
MCP_API_REQUESTS_PER_MINUTE_USER = env.int("MCP_API_REQUESTS_PER_MINUTE_USER", default=600)
MCP_API_REQUESTS_PER_MINUTE_TENANT = env.int("MCP_API_REQUESTS_PER_MINUTE_TENANT", default=3000)
# Failed authentications (bad token, expired, revoked) per client address per minute, on the
# WebSocket and the REST API together, as a burst and as the refill; past it, 429 without a
# database query. Per web process; 0: no limit.
MCP_AUTH_FAILURES_PER_MINUTE = env.int("MCP_AUTH_FAILURES_PER_MINUTE", default=30)
# Login (/login/, /admin/login/) lockout by django-axes: this many failures for one username
# from one address lock that pair out for the cool-off (seconds).
MCP_LOGIN_FAILURE_LIMIT = env.int("MCP_LOGIN_FAILURE_LIMIT", default=5)
MCP_LOGIN_COOLOFF_SECONDS = env.int("MCP_LOGIN_COOLOFF_SECONDS", default=15 * 60)
# Replies a connection leaves unread (a client that does not read); past it, it is closed.
MCP_MAX_OUTBOUND_BYTES_PER_CONNECTION = env.int(
    "MCP_MAX_OUTBOUND_BYTES_PER_CONNECTION", default=16 * 1024 * 1024
)

# django-axes (login throttling), from the settings above. Failures are kept in the database
# (the admin's "Access attempts" lists and deletes them; `manage.py axes_reset` unlocks all).
AXES_FAILURE_LIMIT = MCP_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=MCP_LOGIN_COOLOFF_SECONDS)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures only: no row per successful login
# No start-up banner in every process (pytest workers, fan-out pool processes, each serve);
# failures are still logged, naming the lockout's parameters.
AXES_VERBOSE = False

# Tenants' files live under MCP_DATA_ROOT/<tenant slug>/.
MCP_DATA_ROOT = Path(env.str("MCP_DATA_ROOT", default=str(VAR_DIR / "data")))

# --- REST API -----------------------------------------------------------------------------
INSTALLED_APPS += ["django_filters", "drf_spectacular", "drf_spectacular_sidecar"]
# The REST rate limit's counters (MCP_API_REQUESTS_PER_MINUTE_*): shared by every process
# through Redis when there is one.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("MCP_CACHE_URL", default=REDIS_URL),
            # Installations sharing one Redis (e.g. test runs side by side) keep apart by it.
            "KEY_PREFIX": env.str("MCP_CACHE_PREFIX", default="mcp"),
            # A Redis that hangs costs a request this long, then a 503 (mcp_server.health).
            "OPTIONS": {
                "socket_timeout": MCP_DEPENDENCY_TIMEOUT,
                "socket_connect_timeout": MCP_DEPENDENCY_TIMEOUT,
                "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 1),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SPECTACULAR_SETTINGS = {
    "TITLE": "MCP Realtime API",
    "DESCRIPTION": "Operation history, tool catalog, API tokens and statistics of one tenant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Tool apps (issue 15, docs/tools.md) ----------------------------------------------------
# Django apps whose `mcp_tools` module adds tools. An environment list rather than an edit of
# INSTALLED_APPS, so an operator adds their apps without touching settings: MCP_TOOL_APPS=a,b.
# The example app is on by default, so a laptop run shows tools from an app; `MCP_TOOL_APPS=`
# (empty) leaves it out. Apps listed in INSTALLED_APPS are searched for tools just the same.
MCP_TOOL_APPS = env.list("MCP_TOOL_APPS", default=["example_tools"])
INSTALLED_APPS += [app for app in MCP_TOOL_APPS if app not in INSTALLED_APPS]
