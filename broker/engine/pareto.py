"""Pareto optimality over (total cost, runtime, carbon): lower is better on every axis; unknown carbon = +inf."""

from __future__ import annotations

import numpy as np

from broker.engine.estimate import Candidates


def _points(cost: np.ndarray, hours: np.ndarray, carbon: np.ndarray) -> np.ndarray:
    return np.column_stack([cost, hours, np.where(np.isnan(carbon), np.inf, carbon)])


def dominated(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each row of `points`: is it dominated by some row of `others` (<= everywhere, < somewhere)?"""
    out = np.zeros(points.shape[0], dtype=bool)
    for j, p in enumerate(points):
        le = np.all(others <= p, axis=1)
        lt = np.any(others < p, axis=1)
        out[j] = bool(np.any(le & lt))
    return out


def pareto_flags(c: Candidates, picked: np.ndarray) -> np.ndarray:
    """Pareto flag for the candidates `picked` against every candidate.

    Only candidates no worse than the picked ones' worst cost and runtime can dominate them, so carbon is
    computed and compared for that (usually small) subset only.
    """
    if picked.size == 0:
        return np.zeros(0, dtype=bool)
    near = np.flatnonzero((c.cost <= c.cost[picked].max()) & (c.hours <= c.hours[picked].max()))
    _, carbon = c.energy_and_carbon(near)
    pts = _points(np.take(c.cost, near), np.take(c.hours, near), carbon)
    where = np.searchsorted(near, picked)  # picked ⊆ near, both sorted by index
    return ~dominated(pts[where], pts)


def pareto_front(cost: np.ndarray, hours: np.ndarray, carbon: np.ndarray) -> np.ndarray:
    """Indices of every non-dominated point (O(n²); for tests and small sets)."""
    pts = _points(cost, hours, carbon)
    return np.flatnonzero(~dominated(pts, pts))
