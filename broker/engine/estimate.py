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
from broker.engine.snapshot import OfferSnapshot

# Interruption-risk prior for interruptible (spot) capacity, per node-hour: expected, low, high (assumption).
INTERRUPTION_RATE = (0.02, 0.005, 0.05)
CHECKPOINT_INTERVAL_HOURS = 1.0  # assumption: jobs checkpoint hourly, so an interruption loses half an hour
RESTART_HOURS = 0.25  # assumption: re-acquire a node, reload the checkpoint
DEFAULT_PUE = (1.56, 1.2, 1.8)  # Uptime Institute 2024 survey average [UPTIME_PUE]; range is an assumption
# Runtime uncertainty by perf confidence (high, medium, low): multiplicative low/high bounds.
RUNTIME_RANGE = {HIGH: (0.85, 1.15), MEDIUM: (0.75, 1.35), 2: (0.6, 1.7)}


def rework_factor(nodes: np.ndarray, interruptible: np.ndarray | None, rate: float = INTERRUPTION_RATE[0]):
    """1 + λ·n·(checkpoint/2 + restart) for interruptible configurations; 1 (a scalar) when none is."""
    if interruptible is None:
        return 1.0
    loss = CHECKPOINT_INTERVAL_HOURS / 2 + RESTART_HOURS
    return np.where(interruptible, 1 + rate * nodes * loss, 1.0)


def runtime_hours(plan: NodePlan, request: Request, nt: np.ndarray, nodes: np.ndarray | int):
    """Hours the work runs on `nodes` nodes (before interruptions); a scalar for duration kinds."""
    if request.is_job:
        return np.take(plan.base_hours, nt) / SCALING[plan.scale_class[nt], nodes]
    return float(request.duration_hours)


class Candidates:
    """Feasible configurations, one entry per (offer row, nodes, variant).

    Energy, carbon and reliability are gathered lazily: many objectives never need them for every candidate.
    """

    def __init__(
        self,
        snap: OfferSnapshot,
        plan: NodePlan,
        row: np.ndarray,
        nodes: np.ndarray,
        interruptible: np.ndarray | None,
        price: np.ndarray,
        hours: np.ndarray | float,
        billed_hours: np.ndarray | float,
        cost: np.ndarray,
        one_per_offer: bool,
    ):
        self.snap, self.plan = snap, plan
        self.row, self.nodes, self.price, self.cost = row, nodes, price, cost
        n = row.shape[0]
        self.interruptible = np.zeros(n, dtype=bool) if interruptible is None else interruptible
        self.hours = np.broadcast_to(np.asarray(hours, dtype=np.float64), (n,))
        self.billed_hours = np.broadcast_to(np.asarray(billed_hours, dtype=np.float64), (n,))
        self.one_per_offer = one_per_offer  # no offer appears twice (one variant, one node count)
        self._carbon: np.ndarray | None = None
        self._energy: np.ndarray | None = None
        self._reliability: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.row.shape[0])

    def energy_and_carbon(self, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """kWh and kg CO2e (NaN unknown) for all candidates, or the subset `idx`."""
        if self._carbon is not None:
            return (self._energy, self._carbon) if idx is None else (self._energy[idx], self._carbon[idx])
        rows = self.row if idx is None else self.row[idx]
        nodes = self.nodes if idx is None else self.nodes[idx]
        hours = self.hours if idx is None else self.hours[idx]
        reg = np.take(self.snap.region, rows)
        regions = self.snap.regions
        pue = np.take(np.where(np.isnan(regions.pue), DEFAULT_PUE[0], regions.pue), reg)
        energy = np.take(self.plan.node_kw, np.take(self.snap.node_type, rows)) * nodes * hours * pue
        carbon = energy * np.take(regions.grid_ci, reg) / 1000
        if idx is None:
            self._energy, self._carbon = energy, carbon
        return energy, carbon

    @property
    def carbon_kg(self) -> np.ndarray:
        return self.energy_and_carbon()[1]

    def reliability(self, idx: np.ndarray | None = None) -> np.ndarray:
        if idx is None:
            if self._reliability is None:
                self._reliability = self.snap.providers.reliability[self.snap.provider[self.row]]
            return self._reliability
        return self.snap.providers.reliability[self.snap.provider[self.row[idx]]]


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
