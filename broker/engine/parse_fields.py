"""Field readers shared by the request parser: each validates one value and records errors by field path."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.engine.request import RequestError
from broker.engine.specs import EngineSpecs


class Errors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.fields.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            raise RequestError(self.fields)


def number(
    value: Any,
    path: str,
    err: Errors,
    *,
    integer: bool = False,
    allow_zero: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        err.add(path, "must be a number")
        return None
    try:
        number = float(value)
    except ValueError:
        err.add(path, "must be a number")
        return None
    if not math.isfinite(number):
        err.add(path, "must be a finite number")
        return None
    if integer and number != int(number):
        err.add(path, "must be a whole number")
        return None
    if number < 0:
        err.add(path, f"must be positive, got {value}")
        return None
    if number == 0 and not allow_zero:
        err.add(path, "must be greater than 0")
        return None
    if minimum is not None and number < minimum:
        err.add(path, f"must be at least {minimum:g}")
        return None
    if maximum is not None and number > maximum:
        err.add(path, f"must be at most {maximum:g}")
        return None
    return int(number) if integer else number


def money(value: Any, path: str, err: Errors) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        err.add(path, "must be a decimal amount")
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        err.add(path, "must be a decimal amount")
        return None
    if not amount.is_finite() or amount <= 0:
        err.add(path, "must be greater than 0")
        return None
    return amount


def strings(value: Any, path: str, err: Errors) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    err.add(path, "must be a string or a list of strings")
    return ()


def check_keys(data: Mapping[str, Any], allowed: set[str], prefix: str, err: Errors) -> None:
    for key in data:
        if key not in allowed:
            err.add(f"{prefix}{key}", "unknown field")


def choices(value: Any, path: str, options: tuple[str, ...], err: Errors) -> tuple[str, ...]:
    out = []
    for v in strings(value, path, err):
        if v.lower() in ("any", "*"):
            return ()
        if v.lower() not in options:
            err.add(path, f"'{v}' is not one of {', '.join(options)}")
        else:
            out.append(v.lower())
    return tuple(out)


def accelerators(value: Any, path: str, err: Errors, specs: EngineSpecs) -> tuple[str, ...]:
    names: list[str] = []
    for query in strings(value, path, err):
        if query.lower() in ("any", "*"):
            return ()
        resolution = specs.vocabulary.resolve(query)
        if resolution.status == "unknown":
            err.add(path, resolution.message())
        for name in resolution.candidates:  # ambiguous family names mean any of them
            if name not in names:
                names.append(name)
    return tuple(names)
