"""manage.py recommend --request FILE.json: print the same JSON as POST /api/v1/recommendations/."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from marketplace.errors import DomainError
from marketplace.services.quotes import quote_create


class Command(BaseCommand):
    help = "Recommend offers for a request document (JSON file, or - for standard input) and print the answer."

    def add_arguments(self, parser):
        parser.add_argument("--request", required=True, help="Path to the request JSON, or - for stdin.")
        parser.add_argument("--no-quote", action="store_true", help="Do not store a quote.")

    def handle(self, *args, **opts):
        path = opts["request"]
        try:
            if path == "-":
                raw = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as fh:
                    raw = fh.read()
            document = json.loads(raw)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}") from None
        try:
            _, answer = quote_create(None, document)
        except DomainError as exc:
            self.stdout.write(json.dumps({"error": {"code": exc.code, "message": exc.message, "fields": exc.fields}},
                                         indent=2))
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps(answer, indent=2))
