"""Per-configuration estimates: runtime, total cost, energy and carbon, with low–high ranges.

A configuration is (offer, nodes, on-demand or interruptible). Formulas (sources in docs/ranking.md):
    hours      = job work / (n · s(n) · node rate)          (duration kinds: the requested duration)
    rework     = 1 + λ · n · (checkpoint interval / 2 + restart)    (interruptible only)
    cost       = node price · n · max(hours · rework, minimum rental)   (duration kinds: price · n · duration · rework)
    energy kWh = TDP · count · n · hours · rework · utilisation · PUE
    carbon kg  = energy · grid intensity / 1000
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from broker.engine.perf import HIGH, MEDIUM
from broker.engine.plan import SCALING, UTILISATION, NodePlan
from broker.engine.request import Request

# Interruption-risk prior for interruptible (spot) capacity, per node-hour: expected, low, high (assumption).
INTERRUPTION_RATE = (0.02, 0.005, 0.05)
CHECKPOINT_INTERVAL_HOURS = 1.0  # assumption: jobs checkpoint hourly, so an interruption loses half an hour
RESTART_HOURS = 0.25  # assumption: re-acquire a node, reload the checkpoint
DEFAULT_PUE = (1.56, 1.2, 1.8)  # Uptime Institute 2024 survey average [UPTIME_PUE]; range is an assumption
# Runtime uncertainty by perf confidence (high, medium, low): multiplicative low/high bounds.
RUNTIME_RANGE = {HIGH: (0.85, 1.15), MEDIUM: (0.75, 1.35), 2: (0.6, 1.7)}


def rework_factor(nodes: np.ndarray, interruptible: np.ndarray, rate: float = INTERRUPTION_RATE[0]) -> np.ndarray:
    loss = CHECKPOINT_INTERVAL_HOURS / 2 + RESTART_HOURS
    return np.where(interruptible, 1 + rate * nodes * loss, 1.0)


def runtime_hours(plan: NodePlan, request: Request, nt: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Hours the work runs on `nodes` nodes (before interruptions)."""
    if request.is_job:
        return plan.base_hours[nt] / SCALING[plan.scale_class[nt], nodes]
    return np.full(nt.shape, float(request.duration_hours))


@dataclass(frozen=True)
class Candidates:
    """Feasible configurations, one entry per (offer row, nodes, variant)."""

    row: np.ndarray  # index into the snapshot
    nodes: np.ndarray
    interruptible: np.ndarray  # bool
    price: np.ndarray  # per node-hour, the variant's price
    hours: np.ndarray  # expected runtime including rework
    billed_hours: np.ndarray
    cost: np.ndarray
    carbon_kg: np.ndarray  # NaN unknown
    energy_kwh: np.ndarray
    reliability: np.ndarray  # NaN unknown

    def __len__(self) -> int:
        return int(self.row.shape[0])

    def take(self, idx: np.ndarray) -> Candidates:
        return Candidates(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def energy_and_carbon(
    plan: NodePlan, nt: np.ndarray, nodes: np.ndarray, hours: np.ndarray, pue: np.ndarray, ci: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    energy = plan.node_kw[nt] * nodes * hours * np.where(np.isnan(pue), DEFAULT_PUE[0], pue)
    return energy, energy * ci / 1000


@dataclass(frozen=True, slots=True)
class Ranges:
    hours: tuple[float, float]
    cost: tuple[float, float]
    carbon_kg: tuple[float, float] | None


def ranges(
    request: Request,
    confidence: int,
    nodes: int,
    hours: float,
    interruptible: bool,
    price: float,
    min_rental: float,
    node_kw: float,
    pue: float | None,
    ci: float | None,
) -> Ranges:
    """Low–high bounds for one configuration (scalar; used for the top-k only)."""
    lo_f, hi_f = RUNTIME_RANGE[int(confidence)] if request.is_job else (1.0, 1.0)
    loss = CHECKPOINT_INTERVAL_HOURS / 2 + RESTART_HOURS
    rw_lo = 1 + INTERRUPTION_RATE[1] * nodes * loss if interruptible else 1.0
    rw_hi = 1 + INTERRUPTION_RATE[2] * nodes * loss if interruptible else 1.0
    h_lo, h_hi = hours * lo_f * rw_lo, hours * hi_f * rw_hi
    if request.is_job:
        c_lo, c_hi = price * nodes * max(h_lo, min_rental), price * nodes * max(h_hi, min_rental)
    else:
        c_lo, c_hi = price * nodes * hours * rw_lo, price * nodes * hours * rw_hi
        h_lo = h_hi = hours
    carbon = None
    if ci is not None and node_kw == node_kw:
        _, u_lo, u_hi = UTILISATION[request.kind]
        u_mid = UTILISATION[request.kind][0]
        p_lo, p_hi = (pue, pue) if pue is not None else DEFAULT_PUE[1:]
        kw = node_kw / u_mid * nodes
        carbon = (kw * u_lo * h_lo * p_lo * ci / 1000, kw * u_hi * h_hi * p_hi * ci / 1000)
    return Ranges((h_lo, h_hi), (c_lo, c_hi), carbon)
