"""brokerctl's command groups; each module has register(cli)."""

from __future__ import annotations

import click

from broker.cli.state import State


def json_flag(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table.")(func)


def state(ctx: click.Context) -> State:
    return ctx.find_root().obj


def wants_json(ctx: click.Context, as_json: bool) -> bool:
    return as_json or state(ctx).json
