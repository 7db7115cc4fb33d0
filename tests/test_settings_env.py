"""Settings read the environment at start-up; a bad value stops the process with a message naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG_VARS = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "BROKER_DEV", "BROKER_VAR_DIR",
               "ALLOWED_HOSTS", "LOG_LEVEL", "MAX_REQUEST_BYTES", "CELERY_QUEUE", "DB_CONN_MAX_AGE",
               "SECURE_SSL_REDIRECT")
SHOW = """
import json, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({"DEBUG": s.DEBUG, "SECRET_KEY": s.SECRET_KEY, "ENGINE": db["ENGINE"],
                  "NAME": str(db["NAME"]),
                  "HOST": db.get("HOST", ""), "PORT": db.get("PORT", ""), "USER": db.get("USER", ""),
                  "BROKER": s.CELERY_BROKER_URL, "QUEUE": s.CELERY_TASK_DEFAULT_QUEUE,
                  "ALLOWED_HOSTS": s.ALLOWED_HOSTS, "MAX": s.DATA_UPLOAD_MAX_MEMORY_SIZE,
                  "SSL_REDIRECT": getattr(s, "SECURE_SSL_REDIRECT", False),
                  "HSTS": getattr(s, "SECURE_HSTS_SECONDS", 0)}))
"""


def start(**env: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter with only the given configuration variables set."""
    base = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    base["DJANGO_SETTINGS_MODULE"] = "broker.settings"
    return subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=60)


def startup_error(**env: str) -> str:
    result = start(**env)
    assert result.returncode == 1, result.stdout
    return result.stderr.strip().splitlines()[-1]


PREFIX = "django.core.exceptions.ImproperlyConfigured: "


@pytest.mark.parametrize(("env", "message"), [
    ({"BROKER_DEV": "1", "DATABASE_URL": "mysql://x"},
     "environment variable DATABASE_URL='mysql://x' has scheme 'mysql'; "
     "expected one of sqlite, postgres, postgresql, pgsql"),
    ({"DEBUG": "maybe"}, "environment variable DEBUG='maybe' is not a boolean (use 1/0, true/false)"),
    ({"BROKER_DEV": "perhaps"},
     "environment variable BROKER_DEV='perhaps' is not a boolean (use 1/0, true/false)"),
    ({}, "environment variable SECRET_KEY is required but not set"),
    ({"BROKER_DEV": "0", "SECRET_KEY": "   "}, "environment variable SECRET_KEY is required but not set"),
    ({"BROKER_DEV": "1", "REDIS_URL": "http://127.0.0.1:6379"},
     "environment variable REDIS_URL='http://127.0.0.1:6379' has scheme 'http'; "
     "expected one of redis, rediss, unix"),
    ({"BROKER_DEV": "1", "MAX_REQUEST_BYTES": "lots"},
     "environment variable MAX_REQUEST_BYTES='lots' is not an integer"),
    ({"BROKER_DEV": "1", "MAX_REQUEST_BYTES": "12"},
     "environment variable MAX_REQUEST_BYTES=12 must be at least 1024"),
], ids=["db-scheme", "debug-bool", "dev-bool", "no-secret", "blank-secret", "redis-scheme", "max-int",
        "max-min"])
def test_bad_value_stops_start_up_naming_the_variable(env: dict[str, str], message: str) -> None:
    assert startup_error(**env) == PREFIX + message


def test_unparsable_database_url_names_the_variable() -> None:
    assert startup_error(BROKER_DEV="1", DATABASE_URL="postgres://[::1").startswith(
        PREFIX + "environment variable DATABASE_URL=")


def test_unknown_log_level_names_the_variable() -> None:
    message = startup_error(BROKER_DEV="1", LOG_LEVEL="LOUD")
    assert message.startswith(PREFIX + "environment variable LOG_LEVEL=")


def test_production_environment_starts_hardened() -> None:
    result = start(SECRET_KEY="k" * 50, DATABASE_URL="postgres://app@db.internal:5433/broker",
                   REDIS_URL="rediss://cache.internal:6380/2", ALLOWED_HOSTS="broker.example, api.example",
                   MAX_REQUEST_BYTES="2048", CELERY_QUEUE="prod")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown == {
        "DEBUG": False, "SECRET_KEY": "k" * 50, "ENGINE": "broker.db_backends.postgresql", "NAME": "broker",
        "HOST": "db.internal", "PORT": 5433, "USER": "app", "BROKER": "rediss://cache.internal:6380/2",
        "QUEUE": "prod", "ALLOWED_HOSTS": ["broker.example", "api.example"], "MAX": 2048,
        "SSL_REDIRECT": True, "HSTS": 31536000,
    }


def test_dev_defaults_use_sqlite_and_the_embedded_redis_socket(tmp_path: Path) -> None:
    result = start(BROKER_DEV="1", BROKER_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["SECRET_KEY"] == "dev-insecure-key-only-for-local-runs"
    assert shown["ENGINE"] == "django.db.backends.sqlite3"
    assert shown["NAME"] == str(tmp_path / "broker.sqlite3")
    assert shown["BROKER"] == f"redis+socket://{tmp_path / 'redis.sock'}"
    assert shown["QUEUE"] == "broker"
    assert shown["SSL_REDIRECT"] is False
    assert shown["HSTS"] == 0
