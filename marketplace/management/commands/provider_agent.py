"""Run the reference provider agent (workers/agent): registers the local machine with the broker and runs jobs.

    manage.py provider_agent --port 8701 --broker http://127.0.0.1:8000 --provider demo-gpu-host \\
        --secret-file var/agent.secret --work-dir var/agent --accelerator "NVIDIA T4" --region eu-sweden

The agent itself does not use Django or the broker's database; `python -m workers.agent` takes the same options.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from workers.agent.cli import add_arguments, run


class Command(BaseCommand):
    help = "Run the reference provider agent (stdlib HTTP server that runs the broker's jobs as local processes)."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        add_arguments(parser)

    def handle(self, *args, **options) -> None:
        code = run(options)
        if code:
            raise CommandError(f"provider agent exited with status {code}")
