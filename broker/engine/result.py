"""The engine's answer: frozen dataclasses, and `to_json()` with money as decimal strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")


def money(value: Decimal | None) -> str | None:
    """A decimal string with at least cents ('8' -> '8.00', '0.1234' stays), never in exponent notation."""
    if value is None:
        return None
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(CENT)
    return format(value, "f")


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or x != x else round(float(x), digits)


@dataclass(frozen=True, slots=True)
class ScorePart:
    scorer: str
    weight: float
    value: float  # 0–1, 1 = best among the candidates


@dataclass(frozen=True, slots=True)
class RankedOffer:
    rank: int
    offer_id: int
    provider_id: int
    provider: str
    accelerator: str
    count: int  # accelerators per node
    nodes: int
    region: str
    country: str
    interruptible: bool
    node_price_per_hour: Decimal  # the offer's price for one node (the variant's: on demand or interruptible)
    price_per_hour: Decimal  # for the whole configuration: node price × nodes
    est_hours: float
    est_hours_range: tuple[float, float]
    billed_hours: float
    est_total_usd: Decimal
    est_total_usd_range: tuple[Decimal, Decimal]
    est_kwh: float | None
    est_kg_co2e: float | None
    est_kg_co2e_range: tuple[float, float] | None
    score: float
    score_breakdown: tuple[ScorePart, ...]
    why: str
    pareto: bool
    confidence: str  # high | medium | low
    basis: str  # how runtime / throughput was estimated
    est_tokens_per_second: float | None = None  # llm_inference: throughput of the configuration

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "offer_id": self.offer_id,
            "provider_id": self.provider_id,
            "provider": self.provider,
            "accelerator": self.accelerator,
            "count": self.count,
            "nodes": self.nodes,
            "region": self.region,
            "country": self.country,
            "interruptible": self.interruptible,
            "node_price_per_hour": money(self.node_price_per_hour),
            "price_per_hour": money(self.price_per_hour),
            "est_hours": _r(self.est_hours),
            "est_hours_range": [_r(x) for x in self.est_hours_range],
            "billed_hours": _r(self.billed_hours),
            "est_total_usd": money(self.est_total_usd),
            "est_total_usd_range": [money(x) for x in self.est_total_usd_range],
            "est_kwh": _r(self.est_kwh, 3),
            "est_kg_co2e": _r(self.est_kg_co2e, 3),
            "est_kg_co2e_range": None if self.est_kg_co2e_range is None else [_r(x, 3) for x in self.est_kg_co2e_range],
            "est_tokens_per_second": _r(self.est_tokens_per_second, 1),
            "score": _r(self.score, 6),
            "score_breakdown": {
                p.scorer: {"weight": _r(p.weight), "value": _r(p.value, 6)} for p in self.score_breakdown
            },
            "why": self.why,
            "pareto": self.pareto,
            "confidence": self.confidence,
            "basis": self.basis,
        }


@dataclass(frozen=True, slots=True)
class ReasonCount:
    code: str
    side: str
    relaxable: bool
    count: int
    description: str


@dataclass(frozen=True, slots=True)
class NearMiss:
    offer_id: int
    provider: str
    accelerator: str
    count: int
    nodes: int
    region: str
    reason: str
    side: str
    gap: str
    price_per_hour: Decimal
    est_total_usd: Decimal | None

    def to_json(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id,
            "provider": self.provider,
            "accelerator": self.accelerator,
            "count": self.count,
            "nodes": self.nodes,
            "region": self.region,
            "reason": self.reason,
            "side": self.side,
            "gap": self.gap,
            "price_per_hour": money(self.price_per_hour),
            "est_total_usd": money(self.est_total_usd),
        }


@dataclass(frozen=True, slots=True)
class Excluded:
    considered: int
    feasible: int
    excluded: int
    by_reason: tuple[ReasonCount, ...]
    near_misses: tuple[NearMiss, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "feasible": self.feasible,
            "excluded": self.excluded,
            "by_reason": [
                {
                    "code": r.code,
                    "side": r.side,
                    "relaxable": r.relaxable,
                    "count": r.count,
                    "description": r.description,
                }
                for r in self.by_reason
            ],
            "near_misses": [n.to_json() for n in self.near_misses],
        }


@dataclass(frozen=True, slots=True)
class Relaxation:
    constraint: str
    side: str
    change: str  # "raise max_price_per_hour to $41.40"
    adds: int  # offers that fail only this constraint
    cheapest_offer_id: int | None
    cheapest_total_usd: Decimal | None
    effect: str

    def to_json(self) -> dict[str, Any]:
        return {
            "constraint": self.constraint,
            "side": self.side,
            "change": self.change,
            "adds": self.adds,
            "cheapest_offer_id": self.cheapest_offer_id,
            "cheapest_total_usd": money(self.cheapest_total_usd),
            "effect": self.effect,
        }


@dataclass(frozen=True, slots=True)
class Recommendation:
    kind: str
    objective: str
    weights: tuple[tuple[str, float], ...]
    workload: dict[str, Any]  # what the engine derived: memory, FLOPs, duration or time limit ...
    recommendations: tuple[RankedOffer, ...]
    excluded: Excluded
    relaxations: tuple[Relaxation, ...]
    generated_at: datetime | None = None
    assumptions: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "objective": self.objective,
            "weights": dict(self.weights),
            "workload": self.workload,
            "recommendations": [r.to_json() for r in self.recommendations],
            "excluded": self.excluded.to_json(),
            "relaxations": [r.to_json() for r in self.relaxations],
            "generated_at": self.generated_at.isoformat() if self.generated_at else None,
            "assumptions": list(self.assumptions),
        }
