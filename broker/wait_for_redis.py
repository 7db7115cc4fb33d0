"""Block until the configured Redis (settings.REDIS_URL) answers PING, so web, worker and beat start after it.

    python -m broker.wait_for_redis [--timeout SECONDS]

Exits 0 once Redis answers, 1 with a message naming REDIS_URL when it does not within the timeout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import redis


def wait_for_redis(url: str, timeout: float) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.ping():
                return True
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wait until REDIS_URL answers PING.")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "broker.settings")
    from django.conf import settings

    url = settings.REDIS_URL
    if wait_for_redis(url, args.timeout):
        return 0
    print(f"wait_for_redis: REDIS_URL={url} did not answer PING within {args.timeout:g} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
