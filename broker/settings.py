"""Django settings. Everything that differs between machines comes from the environment (broker/env.py)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from broker.celery_routing import task_queues
from broker.env import env_bool, env_choice, env_int, env_list, env_rate, env_str, env_url
from marketplace.agents.beat import SCHEDULE as AGENTS_BEAT
from marketplace.billing.beat import SCHEDULE as BILLING_BEAT
from marketplace.orders.beat import SCHEDULE as ORDERS_BEAT

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BROKER_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
DEV_MODE = env_bool("BROKER_DEV", DEBUG)  # make run / make test set this; production does not
SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-key-only-for-local-runs" if DEV_MODE else None,
                     required=not DEV_MODE)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])

DATABASE_URL = env_url("DATABASE_URL", f"sqlite:///{VAR_DIR / 'broker.sqlite3'}",
                       schemes=("sqlite", "postgres", "postgresql", "pgsql"))
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
                                                conn_health_checks=True)}  # a dropped connection is not reused
except ValueError as exc:
    raise ImproperlyConfigured(f"environment variable DATABASE_URL is invalid: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE",
                                       "init_command": "PRAGMA journal_mode=WAL;"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    # Django's PostgreSQL backend with a health check that polls the socket before it asks the server
    # (broker/db_backends/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "broker.db_backends.postgresql"
if DATABASES["default"]["ENGINE"] == "broker.db_backends.postgresql" and env_bool("DB_PREPARED_STATEMENTS", True):
    # psycopg may prepare statements on the connection (Django turns this off, for transaction-mode poolers such
    # as PgBouncer < 1.21: set DB_PREPARED_STATEMENTS=false behind one). Only server-side-binding cursors prepare:
    # the offer search's page query (marketplace/selectors/offer_page_sql.py); the ORM keeps client-side binding.
    # The page query's prepared statement runs on its generic plan: PostgreSQL's own choice (custom plans until the
    # generic one looks no costlier) kept planning it per request (~0.8 ms) for the common queries, and measured
    # over 27 query shapes the generic plan was as fast or faster. Nothing else is prepared, so nothing else changes.
    options = DATABASES["default"].get("OPTIONS", {})
    libpq_options = " ".join(filter(None, [options.get("options", ""), "-c plan_cache_mode=force_generic_plan"]))
    DATABASES["default"]["OPTIONS"] = {**options, "prepare_threshold": 5, "options": libpq_options}

# Redis: REDIS_URL (redis://, rediss://, or unix:// for the embedded server that `make run` starts).
REDIS_URL = env_url("REDIS_URL", f"unix://{VAR_DIR / 'redis.sock'}", schemes=("redis", "rediss", "unix"))


def _celery_url(url: str) -> str:
    return "redis+socket://" + url.removeprefix("unix://") if url.startswith("unix://") else url


CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Worker processes keep their database connection between tasks (CONN_MAX_AGE, checked around every task by
# broker/celery.py) instead of Celery's default of a new connection per task.
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "broker")
# Queues split by kind (default, provisioning, polling, billing) derived from the base queue: broker/celery_routing.py.
CELERY_TASK_ROUTES = ("broker.celery_routing.route_task",)
CELERY_TASK_QUEUES = task_queues(CELERY_TASK_DEFAULT_QUEUE)  # a worker without --queues serves every kind
CELERY_BEAT_SCHEDULE = {
    # OFFERS_UNLIST_INTERVAL_S (default 60): how often beat unlists offers past their available_until.
    "unlist-expired-offers": {"task": "workers.tasks.offers.unlist_expired_offers",
                              "schedule": float(env_int("OFFERS_UNLIST_INTERVAL_S", 60, minimum=1))},
    **ORDERS_BEAT,
    **BILLING_BEAT,
    **AGENTS_BEAT,
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "marketplace",
    "marketplace.orders",
    "marketplace.billing",
    "marketplace.agents",
    "marketplace.portal",
    "marketplace.ops",
]

MIDDLEWARE = [
    "marketplace.ops.middleware.RequestContextMiddleware",  # X-Request-ID, request metrics (first: times the rest)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "marketplace.api.limits.RequestSizeLimitMiddleware",  # 413 on a body over MAX_REQUEST_BYTES, before it is read
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "marketplace.db_unavailable.DatabaseUnavailableMiddleware",  # database errors: 503 + Retry-After (last)
]

ROOT_URLCONF = "broker.urls"
WSGI_APPLICATION = "broker.wsgi.application"
AUTH_USER_MODEL = "marketplace.User"
AUTHENTICATION_BACKENDS = [
    "marketplace.throttling.SignInLimitBackend",  # ModelBackend that first refuses locked-out sign-ins
    "django.contrib.auth.backends.ModelBackend",  # sessions made with it stay valid
]

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 5 * 1024 * 1024, minimum=1024)
# Input limits (marketplace/api/limits.py); over a limit is a 4xx in the one error shape.
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 200, minimum=1)
QUERY_MAX_LENGTH = env_int("QUERY_MAX_LENGTH", 1000, minimum=16)
QUERY_MAX_CLAUSES = env_int("QUERY_MAX_CLAUSES", 30, minimum=1)
QUERY_MAX_LIST_ITEMS = env_int("QUERY_MAX_LIST_ITEMS", 50, minimum=1)
CSV_MAX_BYTES = env_int("CSV_MAX_BYTES", 2 * 1024 * 1024, minimum=1024)
OFFERS_BULK_MAX_ROWS = env_int("OFFERS_BULK_MAX_ROWS", 1000, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marketplace.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "marketplace.api.errors.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "marketplace.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "marketplace.api.negotiation.ContentNegotiation",
    "DEFAULT_RENDERER_CLASSES": ["marketplace.api.renderers.FastJSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Reverse proxies in front of gunicorn that append to X-Forwarded-For: the client address (rate limits) is the
    # entry that many hops from the right; 0 = REMOTE_ADDR (a forged X-Forwarded-For is never trusted).
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0, minimum=0),
}

# Rate limits (marketplace/throttling.py): per user (per client address for sign-in), shared by every web worker
# through the `throttle` cache on Redis; they fail open (logged) when Redis does not answer.
THROTTLE_RATES = {
    "signin": env_rate("THROTTLE_SIGNIN_RATE", "60/min"),
    "tokens": env_rate("THROTTLE_TOKENS_RATE", "60/min"),
    "recommendations": env_rate("THROTTLE_RECOMMENDATIONS_RATE", "1200/min"),
    "orders": env_rate("THROTTLE_ORDERS_RATE", "1200/min"),
}
SIGNIN_FAILURES_MAX = env_int("SIGNIN_FAILURES_MAX", 5, minimum=1)
SIGNIN_LOCKOUT_SECONDS = env_int("SIGNIN_LOCKOUT_SECONDS", 900, minimum=1)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "throttle",
        # Short timeouts and no retries: a Redis outage must not add latency (the limits fail open).
        "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25, "retry": None},
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Compute broker API",
    "DESCRIPTION": "Search accelerator offers, list capacity, get workload-aware recommendations, place orders.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PrecisionEnum": "marketplace.api.recommendation_serializers.PRECISIONS",
    },
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "marketplace.api.limits.document_body_limit"],  # 413 on every write
}

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
# LOG_FORMAT=json: one JSON object a line. Every line carries the request id (X-Request-ID) and, in tasks, the order
# id (marketplace/ops/context.py); Celery workers get the same filter and format (marketplace/ops/celery_signals.py).
LOG_FORMAT = env_choice("LOG_FORMAT", "TEXT", ("TEXT", "JSON")).lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "marketplace.ops.context.ContextFilter"}},
    "formatters": {"text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"},
                   "json": {"()": "marketplace.ops.context.json_formatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["context"], "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# Operations (marketplace/ops, docs/deployment.md): /healthz, /readyz, /metrics.
WORKER_HEARTBEAT_INTERVAL_S = env_int("WORKER_HEARTBEAT_INTERVAL_S", 10, minimum=1)
WORKER_HEARTBEAT_STALE_S = env_int("WORKER_HEARTBEAT_STALE_S", 60, minimum=2)
METRICS_TOKEN = env_str("METRICS_TOKEN", "")  # /metrics with `Authorization: Bearer <token>` (or an operator)
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0, minimum=0)  # a worker host's own /metrics; 0: none
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "127.0.0.1")
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")  # read by prometheus_client itself
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR} is not a directory")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # probes reach gunicorn over plain HTTP

if not DEBUG and not DEV_MODE:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
