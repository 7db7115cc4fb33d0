"""offers: search the market (query language), show one; for providers, list yours, upload a CSV, unlist."""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.commands import json_flag, state, wants_json
from broker.cli.output import emit_json, key_values, note, table

SEARCH_COLUMNS = [
    ("ID", lambda o: o["id"]), ("PROVIDER", lambda o: o["provider"]), ("ACCELERATOR", lambda o: o["accelerator"]),
    ("COUNT", lambda o: o["count"]), ("MEM_GB", lambda o: o["memory_gb"]), ("VCPUS", lambda o: o["vcpus"]),
    ("RAM_GB", lambda o: o["ram_gb"]), ("REGION", lambda o: o["region"]),
    ("$/HOUR", lambda o: o["price_per_hour"]), ("$/ACC_HOUR", lambda o: o["price_per_accelerator_hour"]),
    ("NODES", lambda o: o["nodes_available"]),
]
MINE_COLUMNS = [("ID", lambda o: o["id"]), ("EXTERNAL_ID", lambda o: o["external_id"] or "-"),
                ("STATUS", lambda o: o["status"]), *SEARCH_COLUMNS[2:]]


@click.group()
def offers() -> None:
    """Offers: search the market; providers list, upload (CSV) and unlist their own."""


@offers.command()
@click.argument("query", required=False, default="")
@click.option("--sort", metavar="FIELD", help="price_per_hour (default), price_per_accelerator_hour, memory_gb, "
              "count, ...; '-FIELD' or --desc for descending.")
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="At most this many.")
@json_flag
@click.pass_context
def search(ctx: click.Context, query: str, sort: str | None, desc: bool, limit: int, as_json: bool) -> None:
    """Search listed offers with the query language, e.g. 'accelerator=H100 count>=8 price_per_hour<=30'.

    Clauses are `field op value` (ops: = != < <= > >= in notin); `GET /api/v1/offers/` documents every field.
    """
    ordering = sort
    if ordering and desc and not ordering.startswith("-"):
        ordering = "-" + ordering
    elif desc and not ordering:
        ordering = "-price_per_hour"
    client = state(ctx).client()
    first = client.get("offers/", q=query or None, ordering=ordering, page_size=min(limit, 200))
    for text in first.get("notes", []):
        note(f"note: {text}")
    rows = list(first["results"][:limit])
    next_url = first.get("next")
    while next_url and len(rows) < limit:
        page = client.request("GET", next_url)
        rows.extend(page["results"][: limit - len(rows)])
        next_url = page.get("next")
    if wants_json(ctx, as_json):
        emit_json(rows)
    else:
        table(rows, SEARCH_COLUMNS, empty="No offers match.")


@offers.command()
@click.argument("offer_id", type=int)
@json_flag
@click.pass_context
def show(ctx: click.Context, offer_id: int, as_json: bool) -> None:
    """One offer (listed, or your provider's)."""
    offer = state(ctx).client().get(f"offers/{offer_id}/")
    if wants_json(ctx, as_json):
        emit_json(offer)
        return
    key_values([(k, offer[k]) for k in (
        "id", "name", "external_id", "status", "provider", "accelerator", "count", "memory_gb", "vcpus", "ram_gb",
        "disk_gb", "interconnect", "inter_node", "region", "country", "price_per_hour",
        "price_per_accelerator_hour", "interruptible_price_per_hour", "nodes_available", "min_rental_hours",
        "available_until")])


@offers.command("list")
@click.option("--status", type=click.Choice(["draft", "listed", "unlisted"]), help="Only offers in this status.")
@click.option("--provider", metavar="SLUG", help="Provider slug (operators).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@json_flag
@click.pass_context
def list_mine(ctx: click.Context, status: str | None, provider: str | None, limit: int, as_json: bool) -> None:
    """Your provider's offers, in every status."""
    rows = list(state(ctx).client().pages("provider/offers/", limit=limit, status=status, provider=provider))
    if wants_json(ctx, as_json):
        emit_json(rows)
    else:
        table(rows, MINE_COLUMNS, empty="No offers.")


@offers.command()
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--provider", metavar="SLUG", help="Provider slug (operators).")
@json_flag
@click.pass_context
def upload(ctx: click.Context, csv_file: Path, provider: str | None, as_json: bool) -> None:
    """Create or update your offers from a CSV file (header row of offer fields; rows matched by external_id).

    All or nothing: if any row is invalid, nothing changes and each row's errors are printed.
    """
    result = state(ctx).client().request(
        "POST", "offers/bulk/", params={"provider": provider} if provider else None, data=csv_file.read_bytes(),
        headers={"Content-Type": "text/csv; charset=utf-8"})
    if wants_json(ctx, as_json):
        emit_json(result)
        return
    click.echo(f"{len(result['created'])} created, {len(result['updated'])} updated, "
               f"{len(result['unchanged'])} unchanged")
    click.echo("offer ids in row order: " + (", ".join(str(i) for i in result["ids"]) or "-"))


@offers.command()
@click.argument("offer_id", type=int)
@json_flag
@click.pass_context
def unlist(ctx: click.Context, offer_id: int, as_json: bool) -> None:
    """Take one of your listed offers off the market."""
    offer = state(ctx).client().post(f"offers/{offer_id}/unlist/")
    if wants_json(ctx, as_json):
        emit_json(offer)
    else:
        click.echo(f"Offer {offer['id']} is {offer['status']}.")


def register(cli: click.Group) -> None:
    cli.add_command(offers)
