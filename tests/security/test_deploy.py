"""Production settings: `manage.py check --deploy` reports nothing; secrets come only from the environment (no dev
default is accepted outside dev mode); cookies are secure, HSTS is on; CSRF guards session-authenticated API
writes while token-authenticated API calls need no CSRF token."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
# Everything that could make the child process a dev one is dropped; the production environment is built here.
DROP = ("DEBUG", "BROKER_DEV", "SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
        "STRIPE_CONNECT_WEBHOOK_SECRET", "STRIPE_API_BASE", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "METRICS_TOKEN",
        "DJANGO_ALLOW_ASYNC_UNSAFE")  # the portal's Playwright tests set this one in the test process
SHOW = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({k: getattr(s, k, None) for k in (
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT", "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF")}))
"""


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update(DJANGO_SETTINGS_MODULE="broker.settings", BROKER_VAR_DIR=str(tmp_path / "var"),
               SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="broker.example.com",
               STRIPE_SECRET_KEY="sk_live_" + secrets.token_hex(12),
               STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(8),
               STRIPE_CONNECT_WEBHOOK_SECRET="whsec_" + secrets.token_hex(8))
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_reports_nothing_with_production_settings(tmp_path: Path) -> None:
    result = run(production_env(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stdout + result.stderr

    shown = run(production_env(tmp_path), "-c", SHOW)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "DEBUG": False, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_HSTS_SECONDS": 31536000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_SSL_REDIRECT": True,
        "X_FRAME_OPTIONS": "DENY", "SECURE_CONTENT_TYPE_NOSNIFF": True}


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"SECRET_KEY": ""}, "environment variable SECRET_KEY is required"),
    ({"SECRET_KEY": "dev-insecure-key-only-for-local-runs"}, "security.W009"),
    ({"DEBUG": "1"}, "security.W018"),
    ({"STRIPE_SECRET_KEY": ""}, "STRIPE_SECRET_KEY is required outside dev mode"),
    ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET is required"),
], ids=["no-secret-key", "dev-secret-key", "debug", "no-stripe-key", "no-webhook-secret"])
def test_dev_defaults_are_refused_outside_dev_mode(tmp_path: Path, overrides: dict, expected: str) -> None:
    result = run(production_env(tmp_path, **overrides), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------- CSRF
@pytest.mark.django_db
def test_session_authenticated_api_writes_need_the_csrf_token(customer) -> None:
    from marketplace.models import ApiToken

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(customer)
    refused = browser.post("/api/v1/tokens/", {"name": "csrf"}, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert "CSRF" in refused.json()["error"]["message"]
    assert not ApiToken.objects.filter(user=customer).exists()

    browser.get("/account/tokens/")  # any portal page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post("/api/v1/tokens/", {"name": "csrf"}, content_type="application/json",
                            HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201
    assert browser.get("/api/v1/tokens/").status_code == 200  # reads need no token


@pytest.mark.django_db
def test_token_authenticated_api_writes_need_no_csrf_token(customer) -> None:
    from marketplace.services.tokens import token_create

    _, key = token_create(user=customer, name="cli")
    cli = Client(enforce_csrf_checks=True)
    response = cli.post("/api/v1/tokens/", {"name": "from-cli"}, content_type="application/json",
                        HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 201
