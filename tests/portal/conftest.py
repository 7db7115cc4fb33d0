"""Browser tests of the portal: Debian's Chromium driven by pytest-playwright against pytest-django's live server.

- No `playwright install`: the browser is /usr/bin/chromium (scripts/portal_deps.sh installs it).
- Every test fails on a browser console error or an uncaught page exception (`page` is wrapped).
- Screenshots go to var/artifacts/portal/ (PORTAL_ARTIFACTS overrides); with PORTAL_DOCS_SCREENSHOTS=1 the
  journeys also refresh the committed screenshots in docs/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls of fixtures and assertions are
# still plain synchronous code in that thread, so Django's async-safety guard would refuse them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("PORTAL_ARTIFACTS", ROOT / "var" / "artifacts" / "portal"))
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "correct-horse-battery-9"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/portal_deps.sh (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}, "locale": "en-US",
            "timezone_id": "UTC"}


@pytest.fixture
def page(page):
    """The browser page, failing the test on any console error or uncaught exception."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text} ({msg.location})")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.set_default_timeout(15_000)
    yield page
    assert not problems, "browser console errors:\n" + "\n".join(problems)


@pytest.fixture
def shot(request):
    """shot(page, name, docs=False): save a full-page screenshot as an artifact (and for docs/ when asked)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, *, docs: bool = False, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if docs and os.environ.get("PORTAL_DOCS_SCREENSHOTS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            size = page.viewport_size
            page.set_viewport_size({"width": 1280, "height": 1400})  # the README's images: one tall screen
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"))
            page.set_viewport_size(size)
        return path

    return take


@pytest.fixture
def portal_data(transactional_db):
    """Reference tables and the demo marketplace (the data migration's rows do not survive transactional
    tests' flushes, so they are synced again; both steps are idempotent).

    When the flushed reference rows were not restored (seen after a non-transactional test module ran first),
    they are created again with new ids, so the per-process caches keyed on ids are emptied too: the search's
    accelerator-id map and the engine's snapshot."""
    from marketplace.models import Accelerator, Region
    from marketplace.selectors import offers as offer_selectors
    from marketplace.selectors.snapshot import clear_snapshot_cache
    from marketplace.services.demo import demo_load
    from marketplace.services.reference import sync_accelerators, sync_energy_regions

    def forget() -> None:
        clear_snapshot_cache()
        offer_selectors._ACCELERATOR_IDS.clear()

    forget()
    sync_accelerators(Accelerator)
    sync_energy_regions(Region)
    yield demo_load()
    forget()


@pytest.fixture
def url(live_server):
    def make(path: str) -> str:
        return f"{live_server.url}{path}"

    return make


def sign_in(page, url, username: str, password: str) -> None:
    page.goto(url("/signin/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


# --------------------------------------------------------------------------------- orders: a real worker
FAST_PIPELINE_ENV = {"ORDERS_POLL_INTERVAL_S": "0.2", "ORDERS_METER_INTERVAL_S": "0.3",
                     "ORDERS_RETRY_BASE_S": "0.05", "ORDERS_RETRY_CAP_S": "0.2"}


STRIPE_ENV = {"STRIPE_SECRET_KEY": "sk_test_portal_tests", "STRIPE_WEBHOOK_SECRET": "whsec_portal_platform",
              "STRIPE_CONNECT_WEBHOOK_SECRET": "whsec_portal_connect", "STRIPE_TIMEOUT_SECONDS": "5"}


@pytest.fixture
def stripe_fake(live_server, monkeypatch):
    """The local fake of Stripe (test mode), delivering signed webhooks to the live server, and the broker (this
    process and any worker started after this fixture) pointed at it."""
    from marketplace.billing.fake_stripe import FakeStripe

    fake = FakeStripe(webhook_url=f"{live_server.url}/api/v1/stripe/webhook/",
                      webhook_secret=STRIPE_ENV["STRIPE_WEBHOOK_SECRET"],
                      connect_webhook_url=f"{live_server.url}/api/v1/stripe/connect-webhook/",
                      connect_webhook_secret=STRIPE_ENV["STRIPE_CONNECT_WEBHOOK_SECRET"])
    with fake:
        for name, value in {**STRIPE_ENV, "STRIPE_API_BASE": fake.url}.items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def orders_worker(portal_data, stripe_fake, settings, monkeypatch, tmp_path):
    """A real Celery worker on a private queue, against real Redis, with the simulated driver in a namespace of
    this test (jobs boot in 1 s and run until stopped) and the fake Stripe. The live server's on-commit sends go
    to that queue."""
    import json
    import uuid

    from django.db import connection

    from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests
    from workers.drivers.simulated import SimulatedDriver

    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.fail(f"no Redis answers at REDIS_URL={settings.REDIS_URL}")
    namespace = f"portal-test-{uuid.uuid4().hex[:10]}"
    driver = SimulatedDriver(redis_url=redis_url, namespace=namespace)
    driver.configure(boot_latency_s=1.0, boot_jitter_s=0.0, run_duration_s=None, failure_rate=0.0,
                     run_failure_rate=0.0, preemption_rate=0.0, capacity_loss_rate=0.0, transient_error_rate=0.0)
    config = json.dumps({"simulated": {"namespace": namespace}})
    monkeypatch.setenv("BROKER_DRIVER_CONFIG", config)
    worker = CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                          log_path=tmp_path / "worker.log", concurrency=2)
    worker.env.update({**FAST_PIPELINE_ENV, "BROKER_DRIVER_CONFIG": config})
    settings.CELERY_TASK_DEFAULT_QUEUE = worker.queue
    worker.sim = driver  # tests configure per-offer knobs (run length, failures) through it
    worker.start()
    yield worker
    worker.stop()
    driver.reset()
    import redis

    queue = worker.queue  # the messages and kombu's bindings of the private queue
    redis.Redis.from_url(redis_url).delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    assert "Traceback" not in worker.log(), worker.log()[-5000:]
