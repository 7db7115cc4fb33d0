"""invoices: list yours; show one order's or one month's (table, JSON or CSV)."""

from __future__ import annotations

import click

from broker.cli.commands import json_flag, state, wants_json
from broker.cli.output import emit_json, key_values, table


@click.group()
def invoices() -> None:
    """Your invoices: per order and per month."""


@invoices.command("list")
@json_flag
@click.pass_context
def list_invoices(ctx: click.Context, as_json: bool) -> None:
    """The invoices you can open."""
    index = state(ctx).client().get("billing/invoices/")
    if wants_json(ctx, as_json):
        emit_json(index)
        return
    rows = [{"number": i["number"], "kind": "order", "ref": f"--order {i['order_id']}"} for i in index["orders"]]
    rows += [{"number": i["number"], "kind": "month", "ref": f"--month {i['month']}"} for i in index["months"]]
    table(rows, [("NUMBER", lambda r: r["number"]), ("KIND", lambda r: r["kind"]),
                 ("SHOW_WITH", lambda r: f"brokerctl invoices show {r['ref']}")], empty="No invoices yet.")


@invoices.command()
@click.option("--order", "order_id", type=int, help="The invoice of this order.")
@click.option("--month", metavar="YYYY-MM", help="Or your invoice for this month.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the CSV version.")
@json_flag
@click.pass_context
def show(ctx: click.Context, order_id: int | None, month: str | None, as_csv: bool, as_json: bool) -> None:
    """One invoice: --order ID or --month YYYY-MM."""
    if (order_id is None) == (month is None):
        raise click.UsageError("give either --order ID or --month YYYY-MM")
    path = f"billing/invoices/orders/{order_id}/" if order_id is not None else f"billing/invoices/months/{month}/"
    client = state(ctx).client()
    if as_csv:
        click.echo(client.request("GET", path + "csv/", raw=True), nl=False)
        return
    invoice = client.get(path)
    if wants_json(ctx, as_json):
        emit_json(invoice)
        return
    key_values([("invoice", invoice["number"]), ("status", invoice["status"]), ("customer", invoice["customer"]),
                ("currency", invoice["currency"].upper())])
    table(invoice["lines"] + invoice.get("credits", []),
          [("DESCRIPTION", lambda r: r["description"]), ("QUANTITY", lambda r: r["quantity"]),
           ("UNIT", lambda r: r["unit"] or "-"), ("UNIT_PRICE", lambda r: r["unit_price"]),
           ("AMOUNT", lambda r: r["amount"])], empty="(no lines)")
    key_values(list(invoice["totals"].items()))


def register(cli: click.Group) -> None:
    cli.add_command(invoices)
