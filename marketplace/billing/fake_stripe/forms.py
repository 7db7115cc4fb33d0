"""Stripe's request encoding: form bodies with bracketed keys (`metadata[order]=5`, `expand[0]=x`) to nested data."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    pass


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [head]
    parts = [head]
    tail = "[" + rest
    pos = 0
    for match in _PART.finditer(tail):
        if match.start() != pos:
            raise FormError(f"Invalid parameter name: {key}")
        parts.append(match.group(1))
        pos = match.end()
    if pos != len(tail):
        raise FormError(f"Invalid parameter name: {key}")
    return parts


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def decode_form(body: str) -> dict[str, Any]:
    """`a=1&m[k]=v&e[0]=x` -> {"a": "1", "m": {"k": "v"}, "e": ["x"]}. Values stay strings, as Stripe receives them."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        parts = _path(key)
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FormError(f"Invalid parameter name: {key}")
            node = child
        node[parts[-1]] = value
    return _listify(out)


def as_int(params: dict, name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise FormError(f"Missing required param: {name}.")
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise FormError(f"Invalid integer: {raw}") from None
    if minimum is not None and value < minimum:
        raise FormError(f"Invalid {name}: must be at least {minimum}")
    return value


def as_bool(params: dict, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    if raw in ("true", "false"):
        return raw == "true"
    raise FormError(f"Invalid boolean: {raw}")
