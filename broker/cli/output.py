"""Rendering: aligned tables and key/value blocks for people, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from broker.cli.client import ApiError

Column = tuple[str, Callable[[dict], Any]]


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value).replace("\n", " ")


def table(rows: Iterable[dict], columns: Sequence[Column], *, empty: str = "(none)") -> None:
    header = [name for name, _ in columns]
    body = [[cell(get(row)) for _, get in columns] for row in rows]
    if not body:
        click.echo(empty)
        return
    widths = [max(len(header[i]), *(len(r[i]) for r in body)) for i in range(len(header))]
    for line in [header, *body]:
        click.echo("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())


def key_values(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key + ':':<{width + 1}} {cell(value)}")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def note(message: str) -> None:
    """Information for people that must not pollute stdout (kept clean for pipes and --json)."""
    click.echo(message, err=True)


def print_api_error(exc: ApiError) -> None:
    where = f"HTTP {exc.status}" if exc.status else "no answer"
    click.echo(f"error: {exc.message} ({where}, {exc.code})", err=True)
    fields = flatten_fields(exc.fields)
    if [message for _, message in fields] != [exc.message]:  # not just the message again
        for path, message in fields:
            click.echo(f"  {path}: {message}", err=True)
    suggestions = exc.body.get("error", {}).get("suggestions") if exc.body else None
    if suggestions and not all(s in exc.message for s in suggestions):
        click.echo(f"  did you mean: {', '.join(suggestions)}", err=True)
    if exc.status == 401:
        click.echo("  (give a token: brokerctl login --token KEY, BROKER_TOKEN, or --token)", err=True)


def flatten_fields(fields: Any, prefix: str = "") -> list[tuple[str, str]]:
    """{"job": {"env": ["bad"]}} -> [("job.env", "bad")]; lists of row dicts get their index."""
    out: list[tuple[str, str]] = []
    if isinstance(fields, dict):
        for key, value in fields.items():
            out.extend(flatten_fields(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(fields, list):
        for index, item in enumerate(fields):
            if isinstance(item, dict | list):
                out.extend(flatten_fields(item, f"{prefix}.{index}"))
            else:
                out.append((prefix or "error", str(item)))
    elif fields not in (None, ""):
        out.append((prefix or "error", str(fields)))
    return out


def is_tty() -> bool:
    return sys.stderr.isatty()
