"""Pareto optimality over (total cost, runtime, carbon): lower is better on every axis; unknown carbon = +inf."""

from __future__ import annotations

import numpy as np


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


def pareto_flags(cost: np.ndarray, hours: np.ndarray, carbon: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Pareto flag for the candidates `picked` against every candidate.

    Only candidates no worse than the picked ones' worst value on each axis can dominate them, so the comparison
    runs over that (usually small) subset.
    """
    if picked.size == 0:
        return np.zeros(0, dtype=bool)
    pts = _points(cost, hours, carbon)
    mine = pts[picked]
    worst = mine.max(axis=0)
    near = np.flatnonzero((pts[:, 0] <= worst[0]) & (pts[:, 1] <= worst[1]) & (pts[:, 2] <= worst[2]))
    return ~dominated(mine, pts[near])


def pareto_front(cost: np.ndarray, hours: np.ndarray, carbon: np.ndarray) -> np.ndarray:
    """Indices of every non-dominated point (O(n²); for tests and small sets)."""
    pts = _points(cost, hours, carbon)
    return np.flatnonzero(~dominated(pts, pts))
