"""tokens: your API tokens (list, create, revoke)."""

from __future__ import annotations

import click

from broker.cli.commands import json_flag, state, wants_json
from broker.cli.output import emit_json, note, table


@click.group()
def tokens() -> None:
    """Your API tokens."""


@tokens.command("list")
@json_flag
@click.pass_context
def list_tokens(ctx: click.Context, as_json: bool) -> None:
    """Your tokens, active and revoked (keys are never shown again)."""
    rows = list(state(ctx).client().pages("tokens/"))
    if wants_json(ctx, as_json):
        emit_json(rows)
        return
    table(rows, [("ID", lambda t: t["id"]), ("NAME", lambda t: t["name"]), ("PREFIX", lambda t: t["prefix"]),
                 ("CREATED", lambda t: t["created_at"][:19].replace("T", " ")),
                 ("LAST_USED", lambda t: t["last_used_at"] and t["last_used_at"][:19].replace("T", " ")),
                 ("ACTIVE", lambda t: t["active"])], empty="No tokens.")


@tokens.command()
@click.argument("name")
@json_flag
@click.pass_context
def create(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create a token named NAME; its key is printed once."""
    token = state(ctx).client().post("tokens/", {"name": name})
    if wants_json(ctx, as_json):
        emit_json(token)
        return
    note(f"Created token {token['id']} ({token['name']}). Store the key now: it is not shown again.")
    click.echo(token["key"])


@tokens.command()
@click.argument("token_id", type=int)
@click.pass_context
def revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke one of your tokens."""
    state(ctx).client().delete(f"tokens/{token_id}/")
    click.echo(f"Revoked token {token_id}.")


def register(cli: click.Group) -> None:
    cli.add_command(tokens)
