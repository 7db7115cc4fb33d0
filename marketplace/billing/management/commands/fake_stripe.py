"""`manage.py fake_stripe --port 12111`: the local fake of Stripe for `make run` (test mode).

Webhooks go to this broker's endpoints, signed with the secrets the broker verifies with (STRIPE_WEBHOOK_SECRET /
STRIPE_CONNECT_WEBHOOK_SECRET, dev defaults otherwise). Point the broker at it with STRIPE_API_BASE (dev mode
does so by default when no STRIPE_SECRET_KEY is set).
"""

from __future__ import annotations

import os
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from marketplace.billing.fake_stripe import FakeStripe
from marketplace.billing.gateway import load_config


class Command(BaseCommand):
    help = "Run the local fake Stripe API on 127.0.0.1 (test mode only), delivering signed webhooks to the broker."
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        web = os.environ.get("WEB_BIND", "127.0.0.1:8000")
        parser.add_argument("--port", type=int, default=12111)
        parser.add_argument("--webhook-url", default=f"http://{web}/api/v1/stripe/webhook/")
        parser.add_argument("--connect-webhook-url", default=f"http://{web}/api/v1/stripe/connect-webhook/")
        parser.add_argument("--no-webhooks", action="store_true", help="Do not deliver events (poll /v1/events).")

    def handle(self, *args, port: int, webhook_url: str, connect_webhook_url: str, no_webhooks: bool,
               **options) -> None:
        config = load_config()
        if not config.test_mode:
            raise CommandError("STRIPE_SECRET_KEY is a live key: the fake only serves test mode.")
        hooks = {} if no_webhooks else {
            "webhook_url": webhook_url, "webhook_secret": config.webhook_secret,
            "connect_webhook_url": connect_webhook_url, "connect_webhook_secret": config.connect_webhook_secret}
        try:
            fake = FakeStripe(port=port, **hooks)
        except OSError as exc:
            raise CommandError(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        with fake:
            self.stdout.write(f"Fake Stripe (TEST MODE, no real money) on {fake.url}; webhooks "
                              f"{'off' if no_webhooks else 'to ' + webhook_url + ' and ' + connect_webhook_url}")
            self.stdout.flush()
            stop.wait()
        self.stdout.write("Fake Stripe stopped.")
