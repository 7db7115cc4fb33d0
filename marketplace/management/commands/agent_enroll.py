"""Broker side: create a provider's agent record and print the secret to give the agent.

    manage.py agent_enroll --provider demo-gpu-host                  # new agent, random secret
    manage.py agent_enroll --provider demo-gpu-host --secret S      # set this secret (idempotent; local demo)
    manage.py agent_enroll --provider demo-gpu-host --secret-file var/demo-agent.secret
    manage.py agent_enroll --provider demo-gpu-host --rotate --grace 3600
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketplace.agents.models import ProviderAgent
from marketplace.agents.services import agent_enroll, agent_rotate_secret
from marketplace.errors import DomainError
from marketplace.models import Provider


class Command(BaseCommand):
    help = "Enrol a provider agent (or set / rotate its secret) and print its key id and secret."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--provider", required=True, help="provider slug")
        parser.add_argument("--name", default="default")
        parser.add_argument("--secret", default=None, help="use this secret (at least 16 characters)")
        parser.add_argument("--secret-file", default=None, help="read the secret to use from this file")
        parser.add_argument("--rotate", action="store_true", help="new secret; the old one stays valid for --grace")
        parser.add_argument("--grace", type=int, default=3600, help="seconds the previous secret stays valid")
        parser.add_argument("--quiet", action="store_true", help="print nothing on success")

    def handle(self, *args, **options) -> None:
        provider = Provider.objects.filter(slug=options["provider"]).first()
        if provider is None:
            raise CommandError(f"no provider '{options['provider']}' (load the demo: manage.py load_demo)")
        if options["secret_file"]:
            options["secret"] = Path(options["secret_file"]).read_text().strip()
        try:
            if options["rotate"]:
                agent = ProviderAgent.objects.filter(provider=provider, name=options["name"]).first()
                if agent is None:
                    raise CommandError(f"provider {provider.slug} has no agent '{options['name']}'")
                secret = agent_rotate_secret(agent_id=agent.pk, grace_s=options["grace"], new=options["secret"])
            else:
                agent, secret = agent_enroll(provider=provider, name=options["name"], secret=options["secret"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if not options["quiet"]:
            self.stdout.write(f"agent {agent.key_id}\nsecret {secret}\n")
