"""recommend(snapshot, request): filter → estimate → score → rank → explain, over a columnar snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from broker.engine.estimate import DEFAULT_PUE, INTERRUPTION_RATE, Candidates, ranges, runtime_hours
from broker.engine.explain import explain
from broker.engine.matching import Context, cost_pool, expand, match
from broker.engine.pareto import pareto_flags
from broker.engine.perf import CONFIDENCE_NAMES, MFU_TRAINING
from broker.engine.plan import NodePlan, plan_node_types
from broker.engine.request import HpcWorkload, LlmWorkload, Request
from broker.engine.result import CENT, RankedOffer, Recommendation, ScorePart
from broker.engine.scorers import best_of, normalise, quantity, rank, rank_keys
from broker.engine.snapshot import OfferSnapshot, units_to_decimal
from broker.engine.specs import EngineSpecs, default_specs

ASSUMPTIONS = (
    f"interruptible capacity: {INTERRUPTION_RATE[0]:.0%} interruption risk per node-hour "
    f"({INTERRUPTION_RATE[1]:.1%}–{INTERRUPTION_RATE[2]:.0%}); each costs half a checkpoint interval plus a restart",
    f"unknown PUE: {DEFAULT_PUE[0]} (Uptime Institute 2024 average)",
    f"no measurement: peak × {MFU_TRAINING:.0%} MFU prior for training, roofline for inference (confidence low)",
)


def _hours_dec(x: float) -> Decimal:
    return Decimal(f"{x:.6f}")


def _total(node_price: Decimal, nodes: int, billed_hours: float) -> Decimal:
    """The one rounding point for money: node price × nodes × billed hours, to the cent (half up)."""
    return (node_price * nodes * _hours_dec(billed_hours)).quantize(CENT, rounding=ROUND_HALF_UP)


def _workload_summary(request: Request, plan: NodePlan) -> dict:
    w = request.workload
    out: dict = {"kind": request.kind}
    if request.duration_hours is not None:
        out["duration_hours"] = round(request.duration_hours, 6)
    if request.time_limit_hours is not None:
        out["time_limit_hours"] = round(request.time_limit_hours, 6)
    if isinstance(w, LlmWorkload):
        out.update(
            model=w.model,
            params_b=w.params_b,
            active_params_b=w.active_params_b,
            precision=w.precision,
            architecture_from=w.architecture_from,
            weights_gb=round(w.weights_bytes / 1e9, 3),
            memory_needed_gb=round(plan.need_gb, 3),
        )
        if w.kind == "llm_inference":
            out.update(
                kv_cache_bytes_per_token=int(w.kv_bytes_per_token),
                context_length=w.context_length,
                concurrent_sequences=w.concurrent_sequences,
                tokens_per_second=w.tokens_per_second,
            )
        else:
            out.update(training_tokens=w.training_tokens, method=w.method, training_flops=w.flops)
    elif isinstance(w, HpcWorkload):
        out.update(fp64_pflop=round(w.fp64_pflop, 6), reference=w.reference or None)
    return out


def _why(
    request: Request, rank_: int, c: Candidates, i: int, best: int, parts: dict, accelerator: str, carbon: float | None
) -> str:
    name = request.objective.name
    what = f"{c.nodes[i]}× node{'s' if c.nodes[i] > 1 else ''} of {accelerator}"
    spot = ", interruptible" if c.interruptible[i] else ""
    hours = f"{c.hours[i]:.1f} h"
    if name == "cost" or (name == "time" and c.hours[i] == c.hours[best] and rank_ > 1):
        lead = "lowest estimated total" if rank_ == 1 else f"+${c.cost[i] - c.cost[best]:,.2f} vs #1"
        return f"{lead}: ${c.cost[i]:,.2f} for {hours} on {what}{spot}"
    if name == "time":
        lead = "fastest" if rank_ == 1 else f"+{c.hours[i] - c.hours[best]:.1f} h vs #1"
        return f"{lead}: {hours} on {what}{spot}, ${c.cost[i]:,.2f}"
    if name == "carbon":
        kg = "unknown carbon" if carbon is None else f"{carbon:,.1f} kg CO2e"
        lead = "lowest carbon" if rank_ == 1 else "low carbon"
        return f"{lead}: {kg} for {hours} on {what}{spot}, ${c.cost[i]:,.2f}"
    strongest = max(parts, key=lambda k: (dict(request.objective.weights)[k] * parts[k], k))
    return f"best balance (strongest on {strongest}): ${c.cost[i]:,.2f}, {hours} on {what}{spot}"


def recommend(
    snapshot: OfferSnapshot, request: Request, specs: EngineSpecs | None = None, now: datetime | None = None
) -> Recommendation:
    specs = specs or default_specs()
    snapshot = snapshot.in_node_type_order  # same offers, rows grouped by node type (answers do not change)
    plan = plan_node_types(specs, request, snapshot.node_types)
    ctx = Context(snapshot, plan, request)
    m = match(ctx)
    rows = m.feasible
    if request.objective.weights == (("cost", 1.0),):
        rows = cost_pool(ctx, rows, request.top_k)
    cands = expand(ctx, rows)
    keys, scores = rank_keys(cands, request.objective, snapshot.offer_id)
    top = rank(cands, keys, snapshot.offer_id, request.top_k)
    flags = pareto_flags(cands, top)
    parts = {
        name: normalise(name, quantity(cands, name, top), best_of(cands, name)) for name, _ in request.objective.weights
    }
    top_scores = scores[top] if scores is not None else sum(w * parts[name] for name, w in request.objective.weights)
    energy, carbon = cands.energy_and_carbon(top)
    reliability = cands.reliability(top)
    offers = []
    for j, i in enumerate(top.tolist()):
        facts = _Facts(
            score=float(top_scores[j]),
            parts={k: float(v[j]) for k, v in parts.items()},
            pareto=bool(flags[j]),
            energy=float(energy[j]),
            carbon=float(carbon[j]),
            reliability=float(reliability[j]),
        )
        offers.append(_materialise(ctx, cands, i, j + 1, int(top[0]), facts))
    excluded, relaxations = explain(ctx, m)
    return Recommendation(
        kind=request.kind,
        objective=request.objective.name,
        weights=request.objective.weights,
        workload=_workload_summary(request, plan),
        recommendations=tuple(offers),
        excluded=excluded,
        relaxations=relaxations,
        generated_at=now,
        assumptions=ASSUMPTIONS,
    )


@dataclass(frozen=True, slots=True)
class _Facts:
    score: float
    parts: dict[str, float]
    pareto: bool
    energy: float
    carbon: float
    reliability: float


def _materialise(ctx: Context, c: Candidates, i: int, rank_: int, best: int, facts: _Facts) -> RankedOffer:
    snap, plan, request = ctx.snap, ctx.plan, ctx.request
    row = int(c.row[i])
    nt, reg, prov = int(snap.node_type[row]), int(snap.region[row]), int(snap.provider[row])
    nodes, interruptible = int(c.nodes[i]), bool(c.interruptible[i])
    units = snap.interruptible_units[row] if interruptible else snap.price_units[row]
    node_price = units_to_decimal(int(units))
    ci = float(snap.regions.grid_ci[reg])
    pue = float(snap.regions.pue[reg])
    carbon = None if facts.carbon != facts.carbon else facts.carbon
    run = float(np.asarray(runtime_hours(plan, request, np.array([nt]), np.array([nodes]))).reshape(-1)[0])
    r = ranges(
        request,
        int(plan.confidence[nt]),
        nodes,
        run,
        interruptible,
        float(c.price[i]),
        float(snap.min_rental_eff[row]),
        float(plan.node_kw[nt]),
        None if pue != pue else pue,
        None if ci != ci else ci,
    )
    accelerator = snap.node_types.accelerator[nt]
    weights = dict(request.objective.weights)
    breakdown = tuple(ScorePart(name, weights[name], value) for name, value in facts.parts.items())
    tps = float(plan.node_rate[nt]) * nodes if request.kind == "llm_inference" else None
    return RankedOffer(
        rank=rank_,
        offer_id=int(snap.offer_id[row]),
        provider_id=int(snap.providers.ids[prov]),
        provider=snap.providers.names[prov],
        accelerator=accelerator,
        count=int(snap.node_types.count[nt]),
        nodes=nodes,
        region=snap.regions.keys[reg],
        country=snap.regions.country[reg],
        interruptible=interruptible,
        node_price_per_hour=node_price,
        price_per_hour=node_price * nodes,
        est_hours=float(c.hours[i]),
        est_hours_range=r.hours,
        billed_hours=float(c.billed_hours[i]),
        est_total_usd=_total(node_price, nodes, float(c.billed_hours[i])),
        est_total_usd_range=(Decimal(f"{r.cost[0]:.6f}").quantize(CENT), Decimal(f"{r.cost[1]:.6f}").quantize(CENT)),
        est_kwh=None if facts.energy != facts.energy else facts.energy,
        est_kg_co2e=carbon,
        est_kg_co2e_range=r.carbon_kg,
        score=facts.score,
        score_breakdown=breakdown,
        why=_why(request, rank_, c, i, best, facts.parts, accelerator, carbon),
        pareto=facts.pareto,
        confidence=CONFIDENCE_NAMES[int(plan.confidence[nt])]
        if request.is_job or request.kind == "llm_inference"
        else "high",
        basis=plan.basis[nt],
        est_tokens_per_second=tps,
    )
