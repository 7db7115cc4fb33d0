"""recommend: the best offers for a workload, from a JSON/YAML request file or flags, with a price-locked quote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from broker.cli.commands import json_flag, state, wants_json
from broker.cli.output import emit_json, table

COLUMNS = [
    ("RANK", lambda r: r["rank"]), ("OFFER", lambda r: r["offer_id"]), ("PROVIDER", lambda r: r["provider"]),
    ("ACCELERATOR", lambda r: f"{r['count']}x {r['accelerator']}"), ("NODES", lambda r: r["nodes"]),
    ("REGION", lambda r: r["region"]), ("$/HOUR", lambda r: r["price_per_hour"]),
    ("EST_HOURS", lambda r: f"{r['est_hours']:.2f}"), ("EST_TOTAL", lambda r: r["est_total_usd"]),
    ("KG_CO2E", lambda r: None if r["est_kg_co2e"] is None else f"{r['est_kg_co2e']:.1f}"),
    ("WHY", lambda r: r["why"]),
]


def load_request(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"{path} is not valid YAML: {exc}", param_hint="--file") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{path} is not valid JSON: {exc}", param_hint="--file") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold one object (the request)", param_hint="--file")
    return data


def request_from_flags(values: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    accelerators = values["accelerator"]
    if accelerators:
        resources["accelerator"] = accelerators[0] if len(accelerators) == 1 else list(accelerators)
    for flag, key in (("count", "count"), ("nodes", "nodes"), ("min_memory_gb", "min_memory_gb")):
        if values[flag] is not None:
            resources[key] = values[flag]
    body: dict[str, Any] = {}
    if resources:
        body["resources"] = resources
    if values["workload"]:
        workload: dict[str, Any] = {"kind": values["workload"]}
        for flag in ("model", "precision", "tokens_per_second", "params_b"):
            if values[flag] is not None:
                workload[flag] = values[flag]
        body["workload"] = workload
    for flag, key in (("hours", "duration_hours"), ("objective", "objective"),
                      ("max_price_per_hour", "max_price_per_hour"), ("max_total_usd", "max_total_usd"),
                      ("top_k", "top_k"), ("interruptible", "interruptible_allowed")):
        if values[flag] is not None:
            body[key] = values[flag]
    if values["region"]:
        body["regions_allowed"] = list(values["region"])
    if values["country"]:
        body["countries_allowed"] = list(values["country"])
    return body


@click.command()
@click.option("--file", "-f", "request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The request as JSON or YAML (.yaml/.yml); flags given too override its top-level keys.")
@click.option("--accelerator", "-a", multiple=True, help="Accelerator name; repeat for 'any of'.")
@click.option("--count", type=click.IntRange(1, 64), help="Accelerators per node.")
@click.option("--nodes", type=click.IntRange(1, 1024), help="Nodes.")
@click.option("--min-memory-gb", type=click.FloatRange(min=0), help="Memory per accelerator, at least.")
@click.option("--workload", type=click.Choice(["llm_inference", "llm_training", "fine_tuning", "hpc", "batch"]),
              help="Derive resources from a workload instead.")
@click.option("--model", help="Workload model, e.g. llama-3-70b.")
@click.option("--params-b", type=float, help="Workload model size in billions of parameters.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "fp8", "int8", "int4"]))
@click.option("--tokens-per-second", type=float, help="Target serving throughput (llm_inference).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), help="Duration in hours.")
@click.option("--objective", type=click.Choice(["cost", "time", "carbon", "balanced"]))
@click.option("--max-price-per-hour", help="USD per hour, at most.")
@click.option("--max-total-usd", help="USD for the whole job, at most.")
@click.option("--region", multiple=True, help="Allowed region (key or prefix); repeatable.")
@click.option("--country", multiple=True, help="Allowed country (ISO code); repeatable.")
@click.option("--interruptible/--no-interruptible", default=None, help="Allow interruptible (spot) offers.")
@click.option("--top-k", type=click.IntRange(1, 50), help="How many recommendations.")
@json_flag
@click.pass_context
def recommend(ctx: click.Context, request_file: Path | None, as_json: bool, **flags: Any) -> None:
    """Rank offers for a workload by total cost, time or carbon, and get a quote to order from.

    Either --file REQUEST.json|yaml or flags, e.g. --accelerator H100 --count 8 --hours 10 --objective cost.
    """
    body = load_request(request_file) if request_file else {}
    body.update(request_from_flags(flags))
    if not body:
        raise click.UsageError("give a request: --file REQUEST.json, or flags such as --accelerator and --hours")
    answer = state(ctx).client().post("recommendations/", body)
    if wants_json(ctx, as_json):
        emit_json(answer)
        return
    excluded = answer.get("excluded") or {}
    table(answer["recommendations"], COLUMNS, empty="No offer fits this request.")
    click.echo(f"considered {excluded.get('considered', 0)} offers, {excluded.get('feasible', 0)} feasible")
    if not answer["recommendations"]:
        for reason in excluded.get("by_reason", []):
            click.echo(f"  {reason['count']} excluded: {reason['description']} ({reason['code']}, "
                       f"{reason['side']} side)")
        for miss in excluded.get("near_misses", [])[:3]:
            click.echo(f"  near miss: offer {miss['offer_id']} ({miss['provider']}): {miss['gap']}")
    for relaxation in answer.get("relaxations", [])[:3]:
        click.echo(f"  try: {relaxation['change']}: {relaxation['effect']}")
    quote = answer.get("quote")
    if quote:
        click.echo(f"quote {quote['id']} (prices locked until {quote['expires_at']})")
        click.echo(f"order it: brokerctl orders create --quote {quote['id']} --hours <H> --command '<command>'")


def register(cli: click.Group) -> None:
    cli.add_command(recommend)
