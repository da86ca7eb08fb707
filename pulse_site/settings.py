"""Pulse settings: everything comes from the environment (see .env.example).

With no variable set this is the embedded default: SQLite, django-q2's ORM broker on the same
file, Channels' in-memory layer and the local-memory cache. DATABASE_URL and REDIS_URL switch to
PostgreSQL, channels-redis, the Redis broker and the Redis cache.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from pulse_site.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("PULSE_DEBUG", False)
# Public (it is in this file): `check --deploy` warns while it is the key (pulse_site.apps).
DEVELOPMENT_SECRET_KEY = "pulse-development-secret-key-not-for-production-use-0123456789"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
# Debug pages do not make the public development key safe: a production site signs real sessions.
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and env_bool("PULSE_PRODUCTION", False):
    raise ImproperlyConfigured("SECRET_KEY must be set when PULSE_PRODUCTION=1.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", ["http://127.0.0.1:8000", "http://localhost:8000"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_q",
    "axes",
    "pulse_site.apps.PulseConfig",
    "pulse_site.teams",
    "pulse_site.live",
    "budgets",
    "jobs",
    "schedules",
    "pulse_site.notifications.apps.NotificationsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "pulse_site.security.ContentSecurityPolicyMiddleware",
    # Outside CommonMiddleware, so that a response made from its refusal (a Host not in
    # ALLOWED_HOSTS) carries X-Frame-Options too.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "pulse_site.teams.middleware.TeamMiddleware",
    "pulse_site.security.PrivateAnswersMiddleware",
    "pulse_site.security.RefuseNulMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
    "pulse_site.throttling.RateHeadersMiddleware",
]

ROOT_URLCONF = "pulse_site.urls"
ASGI_APPLICATION = "pulse_site.asgi.application"
WSGI_APPLICATION = "pulse_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "pulse_site.teams.context_processors.team",
                "budgets.context_processors.budget_alerts",
                "jobs.context_processors.queue_pauses",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL", f"sqlite:///{BASE_DIR / 'pulse.sqlite3'}", ("sqlite", "postgres", "postgresql")
)
_db = dj_database_url.parse(DATABASE_URL)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web, worker and ticker processes read while one writes; IMMEDIATE takes the
    # write lock at BEGIN so two writers queue on the busy timeout instead of failing mid-way.
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not ":memory:", so that test servers and workers in other processes share it.
    _db_file = Path(_db["NAME"])
    _db["TEST"] = {"NAME": str(_db_file.with_name(f"test-{_db_file.name}"))}
else:
    # Keep connections: with CONN_MAX_AGE=0 every enqueue opens a new PostgreSQL connection
    # (~11 ms each), which cut django-q2 throughput from ~1,090 to 43 enqueues/s here.
    _db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 600, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5, minimum=1)
DATABASES = {"default": _db}
IS_POSTGRES = _db["ENGINE"] != "django.db.backends.sqlite3"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, broker ----------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "", ("redis", "rediss")) if env_str("REDIS_URL", "") else ""
PULSE_BROKER = env_choice("PULSE_BROKER", "redis" if REDIS_URL else "orm", ("redis", "orm"))
if PULSE_BROKER == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("PULSE_BROKER='redis' is not valid: REDIS_URL must be set.")



def _redis_database(url: str) -> int:
    """The numbered database a Redis URL names (`?db=`, else its path, as redis-py reads them): 0
    if none. One that is no number is refused: redis-py would take database 0 without a word."""
    parts = urlsplit(url)
    number = parse_qs(parts.query).get("db", [parts.path.strip("/")])[0] or "0"
    if not number.isdigit():
        raise ImproperlyConfigured(f"REDIS_URL={url!r} is not valid: the database must be a number "
                                   f"(redis://host:6379/0), not {number!r}.")
    return int(number)


if REDIS_URL:
    # The pub/sub layer kept up with ~5,700 group_send/s and lost nothing where the default
    # RedisChannelLayer dropped 4-31 % of messages behind a slow consumer (DESIGN.md §2).
    # Pub/sub channels span Redis's numbered databases: deployments sharing one Redis on two
    # databases would hear each other's teams (`team.1` in both) with one prefix, so the default
    # names the database when it is not 0.
    _redis_db = _redis_database(REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL],
                       "prefix": env_str("PULSE_CHANNEL_PREFIX", f"pulse_db{_redis_db}" if _redis_db else "pulse")},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("PULSE_CACHE_PREFIX", "pulse"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# With the in-memory layer only the web process reaches the browsers, so the event relay
# must run there; with Redis any ticker can relay.
PULSE_RELAY_IN_WEB = env_bool("PULSE_RELAY_IN_WEB", not REDIS_URL)

PULSE_WORKERS = env_int("PULSE_WORKERS", 2, minimum=1, maximum=64)
PULSE_MAX_JOB_TIMEOUT = env_int("PULSE_MAX_JOB_TIMEOUT", 3600, minimum=1)
Q_CLUSTER: dict[str, object] = {
    "name": env_str("PULSE_QUEUE_NAME", "pulse"),
    "workers": PULSE_WORKERS,
    # Pulse owns retries, so django-q2 must never run a task again on its own: failures are
    # acked, redelivery (retry) only happens after the longest possible run, and no results pile up.
    "timeout": PULSE_MAX_JOB_TIMEOUT,
    "retry": PULSE_MAX_JOB_TIMEOUT + 300,
    "ack_failures": True,
    "max_attempts": 1,
    "save_limit": -1,
    "catch_up": False,
    "scheduler": False,
    "queue_limit": PULSE_WORKERS,
    "bulk": 1,
    "poll": 0.1,
    "recycle": env_int("PULSE_WORKER_RECYCLE", 1000, minimum=1),
    "max_rss": env_int("PULSE_WORKER_MAX_RSS_KB", 512_000, minimum=10_000),
    "cache": "default",
    "daemonize_workers": False,
    "log_level": env_choice("PULSE_LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
}
if PULSE_BROKER == "redis":
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth, sessions, lockout ----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"
AXES_FAILURE_LIMIT = env_int("PULSE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("PULSE_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Security headers -----------------------------------------------------------------------
PULSE_TLS = env_bool("PULSE_TLS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = PULSE_TLS
CSRF_COOKIE_SECURE = PULSE_TLS
SECURE_SSL_REDIRECT = PULSE_TLS and env_bool("PULSE_SSL_REDIRECT", True)
# A load balancer's probe comes over plain HTTP to the web process itself.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = 31_536_000 if PULSE_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PULSE_TLS
SECURE_HSTS_PRELOAD = PULSE_TLS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PULSE_TLS else None

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pulse_site.teams.authentication.BearerTokenAuthentication",
        "pulse_site.teams.authentication.TeamSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["pulse_site.teams.permissions.IsTeamMember"],
    "DEFAULT_SCHEMA_CLASS": "pulse_site.schema.PulseAutoSchema",
    "EXCEPTION_HANDLER": "pulse_site.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "pulse_site.negotiation.FormatNegotiation",
    "DEFAULT_PARSER_CLASSES": ["pulse_site.parsers.StrictJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["pulse_site.throttling.ReadRateThrottle", "pulse_site.throttling.WriteRateThrottle"],
}
# Calls each credential (an API token, a signed-in user) may make to the API, reads (GET, HEAD,
# OPTIONS) and writes apart, per clock window (pulse_site.throttling); None: no limit. Counted in
# the default cache: shared by every web process with Redis, per process without.
PULSE_API_READ_RATE = env_rate("PULSE_API_READ_RATE", "1200/min")
PULSE_API_WRITE_RATE = env_rate("PULSE_API_WRITE_RATE", "600/min")
# API calls and live sockets whose bearer secret is no token's (a revoked or expired one is not
# counted), per client address (an IPv6 one by its /64; REMOTE_ADDR: behind
# a proxy, the address it forwards, as uvicorn's --forwarded-allow-ips sets it); past it, every
# bearer call from the address is refused until the window turns. None: not counted.
PULSE_API_AUTH_FAILURE_RATE = env_rate("PULSE_API_AUTH_FAILURE_RATE", "60/min")
SPECTACULAR_SETTINGS = {
    "TITLE": "Pulse API",
    "DESCRIPTION": "Submit, schedule, watch and cost-govern background jobs for one team.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page loads Swagger UI from our own static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pulse_site.api.schema_common_responses",
        "pulse_site.api.schema_blank_query_parameters",
    ],
    # Jobs and executions both have a "status" choice field with different choices.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.Job.Status",
        "JobSourceEnum": "jobs.models.Job.Source",
        "ExecutionStatusEnum": "schedules.selectors.EXECUTION_STATUSES",
        "NotificationTargetKindEnum": "pulse_site.notifications.models.Target.Kind",
        "NotificationRuleKindEnum": "pulse_site.notifications.models.Rule.Kind",
    },
}

# --- I18N, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Pulse ------------------------------------------------------------------------------------
PULSE_TICK_SECONDS = env_int("PULSE_TICK_MS", 1000, minimum=50, maximum=60_000) / 1000
PULSE_EVENT_RETENTION_DAYS = env_int("PULSE_EVENT_RETENTION_DAYS", 7, minimum=1)
# Finished jobs (with attempts and logs) and finished schedule executions are pruned after these
# ages by the ticker; nothing queued, held or running is ever pruned.
PULSE_JOB_RETENTION_DAYS = env_int("PULSE_JOB_RETENTION_DAYS", 30, minimum=1)
PULSE_EXECUTION_RETENTION_DAYS = env_int("PULSE_EXECUTION_RETENTION_DAYS", 90, minimum=1)
PULSE_WS_ALLOWED_ORIGINS = env_list("PULSE_WS_ALLOWED_ORIGINS", [])

# Jobs: handler modules to import, limits of what a job may carry, leases and dispatch.
PULSE_HANDLER_MODULES = env_list("PULSE_HANDLER_MODULES", ["jobs.handlers.builtin", "jobs.handlers.http"])
PULSE_MAX_PAYLOAD_BYTES = env_int("PULSE_MAX_PAYLOAD_BYTES", 256 * 1024, minimum=1024)
PULSE_MAX_RESULT_BYTES = env_int("PULSE_MAX_RESULT_BYTES", 256 * 1024, minimum=1024)
PULSE_PROGRESS_INTERVAL = env_int("PULSE_PROGRESS_INTERVAL_MS", 250, minimum=0) / 1000
PULSE_LEASE_SECONDS = env_int("PULSE_LEASE_SECONDS", 30, minimum=3)
PULSE_CANCEL_POLL_SECONDS = env_int("PULSE_CANCEL_POLL_MS", 1000, minimum=50) / 1000
# A cancelled handler that has not returned this many seconds after the cancel is stopped (JobCancelled
# raised in it, as a timeout is); 0: never, it runs until it returns or times out.
PULSE_CANCEL_GRACE_SECONDS = env_float("PULSE_CANCEL_GRACE_SECONDS", 30.0, minimum=0)
# Every worker process writes its WorkerBeat row this often; three missed beats and it is gone.
PULSE_WORKER_BEAT_SECONDS = env_int("PULSE_WORKER_BEAT_SECONDS", 10, minimum=1)
# GET …/jobs/<id>/wait re-reads the job this often even without a live event (a relay behind).
PULSE_WAIT_POLL_SECONDS = env_int("PULSE_WAIT_POLL_MS", 2000, minimum=50) / 1000
# System load gate (off at 0): a worker whose machine uses more than this % of its memory, or
# whose 1-minute load per CPU is above this, starts no job; the job waits for a later try.
PULSE_ADMIT_MAX_MEMORY_PERCENT = env_float("PULSE_ADMIT_MAX_MEMORY_PERCENT", 0.0)
PULSE_ADMIT_MAX_LOAD_PER_CPU = env_float("PULSE_ADMIT_MAX_LOAD_PER_CPU", 0.0)
PULSE_ADMIT_LOAD_RETRY_SECONDS = env_int("PULSE_ADMIT_LOAD_RETRY_SECONDS", 5, minimum=1)

# Notifications by email go through Django's mail backend (console in development).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "pulse@localhost")
# Jobs handed to django-q2 at once, across all clusters: a small multiple of the worker count,
# so the backlog stays in Pulse's table where it can be held, reordered or cancelled. Unset (None):
# twice the live workers of every cluster, from their beats (jobs.dispatch.dispatch_capacity).
PULSE_DISPATCH_CAPACITY: int | None = env_int("PULSE_DISPATCH_CAPACITY", 0, minimum=1) or None
# A worker that settles a job goes straight on to the next one the dispatcher would choose, in the
# same transaction, for up to this many seconds per django-q2 task (0: one job per task).
PULSE_CHAIN_SECONDS = env_float("PULSE_CHAIN_SECONDS", 2.0, minimum=0.0)
# A chaining worker takes up to PULSE_CHAIN_BATCH jobs of one team and handler at once (one
# transaction claims them, one settles them), as many as its recent run time of that handler says
# finish in about PULSE_CHAIN_BATCH_MS; a handler not yet seen, or slower, is taken one at a time.
PULSE_CHAIN_BATCH = env_int("PULSE_CHAIN_BATCH", 20, minimum=1)
PULSE_CHAIN_BATCH_MS = env_int("PULSE_CHAIN_BATCH_MS", 50, minimum=1)
# A worker told to stop (SIGTERM or SIGINT) takes no new job and lets a running handler finish for
# up to this many seconds; then the handler is interrupted and its job goes back to the queue.
PULSE_STOP_TIMEOUT = env_float("PULSE_STOP_TIMEOUT", 25.0, minimum=0.1)
PULSE_REDISPATCH_SECONDS = env_int("PULSE_REDISPATCH_SECONDS", 120, minimum=5)
PULSE_HTTP_REQUEST_COST = env_str("PULSE_HTTP_REQUEST_COST", "0.001")
PULSE_HTTP_ALLOWLIST = env_list("PULSE_HTTP_ALLOWLIST", [])
# Schedules: the shortest interval a cron expression may fire at, and how many missed slots a
# schedule with misfire policy "all" catches up after downtime.
PULSE_SCHEDULE_MIN_INTERVAL_SECONDS = env_int("PULSE_SCHEDULE_MIN_INTERVAL_SECONDS", 60, minimum=60)
PULSE_SCHEDULE_MISFIRE_CAP = env_int("PULSE_SCHEDULE_MISFIRE_CAP", 10, minimum=1, maximum=1000)
# Seconds before its slot a schedule's run is written as a queued job that waits for the slot
# (0: fired at the slot). At most the shortest interval, so a schedule has one staged run at most.
PULSE_SCHEDULE_STAGE_SECONDS = env_int("PULSE_SCHEDULE_STAGE_SECONDS", 60, minimum=0, maximum=60)
# A lower event id may commit after a higher one (sequence order is not commit order): the
# relay waits this long at a gap before deciding the missing row was rolled back.
PULSE_RELAY_GAP_GRACE = env_float("PULSE_RELAY_GAP_GRACE", 3.0)
# After the grace the relay goes on, and still passes on a skipped id that commits within this
# many seconds (a transaction held up by a lock wait or a starved core), out of order.
PULSE_RELAY_LATE_SECONDS = env_float("PULSE_RELAY_LATE_SECONDS", 300.0, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "pulse": {"level": Q_CLUSTER["log_level"], "propagate": True},
        # django-q2's own logger (its name has a hyphen): one info line per task otherwise. It finds
        # the root's handler here, so it leaves Q_CLUSTER["log_level"] unapplied.
        "django-q": {"level": "WARNING", "propagate": True},
    },
}
