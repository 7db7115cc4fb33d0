"""accelerators: what a name means in the broker's hardware vocabulary; the catalog."""

from __future__ import annotations

import click

from broker.cli.commands import json_flag, state, wants_json
from broker.cli.output import emit_json, table


@click.group()
def accelerators() -> None:
    """The accelerator catalog and name resolution."""


@accelerators.command()
@click.argument("name")
@json_flag
@click.pass_context
def resolve(ctx: click.Context, name: str, as_json: bool) -> None:
    """What NAME means: one model (exact) or several (ambiguous). Unknown names exit 1 with suggestions."""
    answer = state(ctx).client().get("accelerators/resolve/", name=name)
    if wants_json(ctx, as_json):
        emit_json(answer)
        return
    click.echo(answer["message"])
    table(answer["candidates"], [("CANONICAL_NAME", lambda c: c["canonical_name"]), ("VENDOR", lambda c: c["vendor"]),
                                 ("MEMORY_GB", lambda c: c["memory_gb"]), ("FORM", lambda c: c["form_factor"])])


@accelerators.command("list")
@click.option("--vendor", help="Only this vendor (e.g. nvidia, amd).")
@json_flag
@click.pass_context
def list_all(ctx: click.Context, vendor: str | None, as_json: bool) -> None:
    """Every accelerator the broker knows."""
    rows = state(ctx).client().get("accelerators/")
    if vendor:
        rows = [r for r in rows if r["vendor"].lower() == vendor.lower()]
    if wants_json(ctx, as_json):
        emit_json(rows)
        return
    table(rows, [("NAME", lambda a: a["canonical_name"]), ("VENDOR", lambda a: a["vendor"]),
                 ("MEMORY_GB", lambda a: a["memory_gb"]), ("BF16_TFLOPS", lambda a: a["bf16_tflops"]),
                 ("FP64_TFLOPS", lambda a: a["fp64_tflops"]), ("TDP_W", lambda a: a["tdp_w"]),
                 ("STACK", lambda a: a["stack_family"])])


def register(cli: click.Group) -> None:
    cli.add_command(accelerators)
