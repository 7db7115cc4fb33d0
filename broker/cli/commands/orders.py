"""orders: place from a quote (or an offer), list, show, events, logs (--follow), watch, cancel."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import click

from broker.cli.client import ApiError, Client
from broker.cli.commands import json_flag, state, wants_json
from broker.cli.output import emit_json, is_tty, key_values, note, table
from broker.cli.state import EXIT_ORDER_UNSUCCESSFUL

FINAL = ("completed", "failed", "cancelled", "expired")
UNSUCCESSFUL = ("failed", "cancelled", "expired")
PAST_RUNNING = ("running", "stopping", "completed")

LIST_COLUMNS = [
    ("ID", lambda o: o["id"]), ("STATE", lambda o: o["state"]), ("OFFER", lambda o: o["offer"]["id"]),
    ("PROVIDER", lambda o: o["offer"]["provider"]), ("ACCELERATOR", lambda o: o["offer"]["accelerator"]),
    ("NODES", lambda o: o["nodes"]), ("$/HOUR", lambda o: o["price_per_hour"]),
    ("METERED", lambda o: o["metered_usd"]), ("CREATED", lambda o: o["created_at"][:19].replace("T", " ")),
]


@click.group()
def orders() -> None:
    """Orders: place, list, show, events, logs, watch, cancel."""


def parse_env(values: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"'{item}' is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


def describe(order: dict[str, Any]) -> list[tuple[str, Any]]:
    offer = order["offer"]
    job = order["job"]
    failure = order.get("failure")
    return [
        ("order", order["id"]),
        ("state", order["state"] + (f" (then {order['stop_outcome']})" if order.get("stop_outcome") else "")),
        ("offer", f"{offer['id']} {offer['name']} by {offer['provider']} in {offer['region']}"),
        ("driver", offer["driver"] + (" (no real machine runs the job)" if order.get("simulated") else "")),
        ("resources", f"{order['nodes']} node(s) x {order['accelerator_count']} {offer['accelerator']}"),
        ("price", f"${order['price_per_hour']}/h (${order['node_price_per_hour']} per node-hour)"),
        ("metered", f"${order['metered_usd']} for {order['metered_seconds']:.0f} s"),
        ("command", job["command"] or f"(image {job['image']})"),
        ("duration", f"{job['duration_hours']} h, budget cap "
                     + (f"${job['budget_cap_usd']}" if job["budget_cap_usd"] else "none")),
        ("attempt", f"{order['attempt']}, job {order['job_ref'] or '-'}"),
        ("created", order["created_at"]),
        ("running since", order["running_at"]),
        ("finished", order["finished_at"]),
        ("failure", f"{failure['code']}: {failure['reason']}" if failure else None),
    ]


@orders.command()
@click.option("--quote", "quote_id", metavar="ID", help="A quote id from `brokerctl recommend`.")
@click.option("--offer", "offer_id", type=int, metavar="ID", help="Or an offer id (with --nodes).")
@click.option("--nodes", type=click.IntRange(1, 10_000), help="Nodes (with --offer).")
@click.option("--command", "-c", "command", help="Shell command the job runs.")
@click.option("--image", default="", help="Container image (for providers that run images).")
@click.option("--env", "-e", multiple=True, metavar="NAME=VALUE", help="Job environment; repeatable.")
@click.option("--hours", required=True, help="Time limit of the job in hours (0 < hours <= 720).")
@click.option("--budget", metavar="USD", help="Stop the job when metering reaches this.")
@click.option("--idempotency-key", metavar="KEY", help="Reuse to retry safely (default: a new UUID, printed).")
@click.option("--watch", "watch_after", is_flag=True, help="Then watch until the order finishes.")
@json_flag
@click.pass_context
def create(ctx: click.Context, quote_id: str | None, offer_id: int | None, nodes: int | None, command: str | None,
           image: str, env: tuple[str, ...], hours: str, budget: str | None, idempotency_key: str | None,
           watch_after: bool, as_json: bool) -> None:
    """Place an order from a quote (or an offer + nodes) with the job to run."""
    if (quote_id is None) == (offer_id is None):
        raise click.UsageError("give either --quote ID, or --offer ID with --nodes")
    if offer_id is not None and nodes is None:
        raise click.UsageError("--offer needs --nodes")
    if quote_id is not None and nodes is not None:
        raise click.UsageError("a quote fixes the nodes; leave out --nodes")
    if not (command or image):
        raise click.UsageError("give the job: --command '...' (or --image)")
    job: dict[str, Any] = {"command": command or "", "image": image, "env": parse_env(env), "duration_hours": hours}
    if budget is not None:
        job["budget_cap_usd"] = budget
    body: dict[str, Any] = {"job": job}
    if quote_id is not None:
        body["quote_id"] = quote_id
    else:
        body.update({"offer_id": offer_id, "nodes": nodes})
    key = idempotency_key or str(uuid.uuid4())
    note(f"Idempotency-Key: {key}")
    client = state(ctx).client()
    order = client.post("orders/", body, headers={"Idempotency-Key": key})
    if watch_after:
        watch_order(ctx, client, order["id"], until="finished", interval=1.0, timeout=None,
                    as_json=wants_json(ctx, as_json))
        return
    if wants_json(ctx, as_json):
        emit_json(order)
    else:
        key_values(describe(order))


@orders.command("list")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@json_flag
@click.pass_context
def list_orders(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Your orders, newest first."""
    rows = list(state(ctx).client().pages("orders/", limit=limit))
    if wants_json(ctx, as_json):
        emit_json(rows)
    else:
        table(rows, LIST_COLUMNS, empty="No orders.")


@orders.command()
@click.argument("order_id", type=int)
@json_flag
@click.pass_context
def show(ctx: click.Context, order_id: int, as_json: bool) -> None:
    """One order."""
    order = state(ctx).client().get(f"orders/{order_id}/")
    if wants_json(ctx, as_json):
        emit_json(order)
    else:
        key_values(describe(order))


@orders.command()
@click.argument("order_id", type=int)
@json_flag
@click.pass_context
def events(ctx: click.Context, order_id: int, as_json: bool) -> None:
    """Every state change and pipeline step of an order."""
    rows = list(state(ctx).client().pages(f"orders/{order_id}/events/"))
    if wants_json(ctx, as_json):
        emit_json(rows)
        return
    table(rows, [("AT", lambda e: e["at"][:23].replace("T", " ")),
                 ("FROM", lambda e: e["from_state"] or "-"), ("TO", lambda e: e["to_state"] or "-"),
                 ("BY", lambda e: e["actor"] or e["task"] or "-"), ("REASON", lambda e: e["reason"] or "-")],
          empty="No events.")


@orders.command()
@click.argument("order_id", type=int)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the order finishes.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Start at this character.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between polls with --follow.")
@json_flag
@click.pass_context
def logs(ctx: click.Context, order_id: int, follow: bool, offset: int, interval: float, as_json: bool) -> None:
    """The job's output (as far as the broker has it); --follow streams it until the order finishes."""
    client = state(ctx).client()
    as_json = wants_json(ctx, as_json)
    while True:
        part = client.get(f"orders/{order_id}/logs/", offset=offset)
        if as_json:
            click.echo(json.dumps(part, ensure_ascii=False) if follow else json.dumps(part, indent=2,
                                                                                        ensure_ascii=False))
        elif part["text"]:
            click.echo(part["text"], nl=False)
        offset = part["next_offset"]
        if not follow or part["complete"]:
            return
        time.sleep(interval)


@orders.command()
@click.argument("order_id", type=int)
@click.option("--until", type=click.Choice(["running", "finished"]), default="finished", show_default=True,
              help="Stop watching once the order runs (or got past running), or once it finishes.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between polls.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="Give up after this many seconds.")
@json_flag
@click.pass_context
def watch(ctx: click.Context, order_id: int, until: str, interval: float, timeout: float | None,
          as_json: bool) -> None:
    """Follow an order's state live. Exits 0 when it is running/finished well, 3 if it failed or was cancelled."""
    watch_order(ctx, state(ctx).client(), order_id, until=until, interval=interval, timeout=timeout,
                as_json=wants_json(ctx, as_json))


def watch_order(ctx: click.Context, client: Client, order_id: int, *, until: str, interval: float,
                timeout: float | None, as_json: bool) -> None:
    started = time.monotonic()
    last = None
    spinner = "|/-\\"
    tick = 0
    while True:
        order = client.get(f"orders/{order_id}/")
        current = order["state"]
        if current != last:
            if is_tty():
                click.echo("\r\033[K", nl=False, err=True)
            if not as_json:
                failure = order.get("failure")
                suffix = f" ({failure['code']}: {failure['reason']})" if failure and current in FINAL else ""
                click.echo(f"{datetime.now():%H:%M:%S} order {order_id} {current}{suffix}")
            last = current
        done = current in FINAL or (until == "running" and current in PAST_RUNNING)
        if done:
            if is_tty():
                click.echo("\r\033[K", nl=False, err=True)
            if as_json:
                emit_json(order)
            if current in UNSUCCESSFUL:
                ctx.exit(EXIT_ORDER_UNSUCCESSFUL)
            return
        waited = time.monotonic() - started
        if timeout is not None and waited > timeout:
            raise ApiError(0, "watch_timeout", f"order {order_id} is still {current} after {timeout:g}s")
        if is_tty():
            click.echo(f"\r{spinner[tick % 4]} {current} for {waited:.0f}s", nl=False, err=True)
            tick += 1
        time.sleep(interval)


@orders.command()
@click.argument("order_id", type=int)
@json_flag
@click.pass_context
def cancel(ctx: click.Context, order_id: int, as_json: bool) -> None:
    """Cancel an order; a running job is stopped."""
    order = state(ctx).client().post(f"orders/{order_id}/cancel/")
    if wants_json(ctx, as_json):
        emit_json(order)
    else:
        then = f" (then {order['stop_outcome']})" if order.get("stop_outcome") else ""
        click.echo(f"order {order['id']} {order['state']}{then}")


def register(cli: click.Group) -> None:
    cli.add_command(orders)
