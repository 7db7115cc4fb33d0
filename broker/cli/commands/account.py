"""login / logout / config: where brokerctl connects and with which token."""

from __future__ import annotations

import click

from broker.cli.client import Client
from broker.cli.commands import json_flag, state, wants_json
from broker.cli.config import read_file, write_file
from broker.cli.output import emit_json, key_values


def _masked(token: str | None) -> str:
    if not token:
        return "(none)"
    return token[:8] + "…" if len(token) > 8 else "…"


@click.command()
@click.option("--token", "token", required=True, metavar="KEY", help="An API token (create one in the portal or "
              "with `brokerctl tokens create`).")
@click.option("--url", metavar="URL", help="Broker URL to save with it (default: the current one).")
@click.pass_context
def login(ctx: click.Context, token: str, url: str | None) -> None:
    """Check a token against the broker and save it (and the URL) in the config file."""
    settings = state(ctx).settings
    target = (url or settings.url).rstrip("/")
    if not target.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    Client(target, token, timeout=state(ctx).timeout).get("tokens/", page_size=1)  # 401 if the token is bad
    values = read_file(settings.config_path)
    values.update({"url": target, "token": token})
    write_file(settings.config_path, values)
    click.echo(f"Logged in to {target} with token {_masked(token)}; saved to {settings.config_path}")


@click.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Remove the saved token from the config file."""
    path = state(ctx).settings.config_path
    values = read_file(path)
    if "token" not in values:
        click.echo(f"No token saved in {path}.")
        return
    values.pop("token")
    write_file(path, values)
    click.echo(f"Removed the token from {path}.")


@click.command("config")
@json_flag
@click.pass_context
def show_config(ctx: click.Context, as_json: bool) -> None:
    """Show the URL and token in effect and where each comes from."""
    s = state(ctx).settings
    data = {"url": s.url, "url_from": s.url_source, "token": _masked(s.token), "token_from": s.token_source,
            "config_file": str(s.config_path)}
    if wants_json(ctx, as_json):
        emit_json(data)
    else:
        key_values(list(data.items()))


def register(cli: click.Group) -> None:
    for command in (login, logout, show_config):
        cli.add_command(command)
