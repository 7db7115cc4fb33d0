"""Typed reads of the environment. A bad value stops start-up with a message naming the variable."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None else None


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = _raw(name)
    if value:
        return value
    if required:
        raise ImproperlyConfigured(f"environment variable {name} is required but not set")
    return default


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"environment variable {name}={value!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"environment variable {name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"environment variable {name}={number} must be at least {minimum}")
    return number


def env_url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name) or default
    if value is None:
        return None
    try:
        parsed = urlparse(value)
        parsed.port  # noqa: B018  (raises ValueError on a malformed host or port)
    except ValueError as exc:
        raise ImproperlyConfigured(f"environment variable {name}={value!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in schemes:
        raise ImproperlyConfigured(
            f"environment variable {name}={value!r} has scheme {parsed.scheme!r}; expected one of {', '.join(schemes)}"
        )
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    if not value:
        return default
    if value.upper() in choices:
        return value.upper()
    raise ImproperlyConfigured(f"environment variable {name}={value!r} must be one of {', '.join(choices)}")


_RATE_PERIODS = {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}


def env_rate(name: str, default: str) -> str | None:
    """A request rate in DRF's form `N/period` (period s, min, hour or day), or `off` (None: no limit)."""
    value = _raw(name) or default
    if value.lower() == "off":
        return None
    count, _, period = value.partition("/")
    if not (count.isdigit() and int(count) > 0 and period in _RATE_PERIODS):
        raise ImproperlyConfigured(f"environment variable {name}={value!r} is not a rate; use N/s, N/min, N/hour, "
                                   f"N/day or off")
    return value
