#!/usr/bin/env python3
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "broker.settings")
    if sys.argv[1:2] == ["makemigrations"]:
        # Writing migrations reads models only: no secret needed, so it works on any checkout.
        os.environ.setdefault("BROKER_DEV", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
