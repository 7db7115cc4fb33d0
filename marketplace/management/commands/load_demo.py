"""`manage.py load_demo`: demo users, demo offers and an API token for alice; prints where to log in."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from marketplace.services.demo import DEMO_PASSWORD, demo_load, demo_token

BASE_URL = "http://127.0.0.1:8000/"


class Command(BaseCommand):
    help = "Load the demo data (idempotent) and print the URLs, logins and an API token for alice."

    def handle(self, *args: Any, **options: Any) -> None:
        s = demo_load()
        key = demo_token("alice")
        self.stdout.write(
            f"Demo data: {s.offers} offers ({s.synthetic_offers} synthetic) from {s.providers} providers; "
            f"created {s.offers_created} offers, updated {s.offers_updated}, {s.users_created} users, "
            f"{s.providers_created} providers, {s.regions_created} regions.\n"
            f"\n  Open       {BASE_URL}\n  Admin      {BASE_URL}admin/\n  API        {BASE_URL}api/v1/\n"
            f"\n  Logins (password '{DEMO_PASSWORD}' for each; local demo only):\n"
            f"    admin  operator (staff, superuser)\n    alice  customer\n"
            f"    bob    provider member of 'Demo GPU Host'\n"
            f"\n  API token for alice (new each run; earlier demo tokens revoked):\n"
            f"    Authorization: Token {key}\n"
        )
