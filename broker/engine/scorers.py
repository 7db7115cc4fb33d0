"""Preferences as named scorers normalised to 0–1 (1 = best among the candidates), weighted by a profile.

    cost        = min cost / cost
    time        = min hours / hours
    carbon      = min kg CO2e / kg CO2e   (unknown carbon scores 0)
    reliability = the provider's observed reliability (unknown: 0.5)
Ties break deterministically on (score desc, total cost asc, offer id asc). A one-scorer profile ranks on its
quantity directly (same order as its score), so only the top-k need a score computed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from broker.engine.estimate import Candidates
from broker.engine.request import Objective

UNKNOWN_RELIABILITY = 0.5
_TINY = 1e-12
Key = np.ndarray | Callable[[np.ndarray], np.ndarray]


def quantity(c: Candidates, name: str, idx: np.ndarray | None = None) -> np.ndarray:
    """The raw quantity behind a scorer (lower is better except reliability)."""
    if name == "cost":
        return c.cost if idx is None else c.cost[idx]
    if name == "time":
        return c.hours if idx is None else c.hours[idx]
    if name == "carbon":
        return c.carbon_kg if idx is None else c.carbon_kg[idx]
    if name == "reliability":
        rel = c.reliability(idx)
        return np.where(np.isnan(rel), UNKNOWN_RELIABILITY, rel)
    raise KeyError(name)


def best_of(c: Candidates, name: str, values: np.ndarray | None = None) -> float:
    values = quantity(c, name) if values is None else values
    if name == "carbon":
        valid = values[~np.isnan(values)]
        return float(valid.min()) if valid.size else float("nan")
    return float(values.min()) if values.size else float("nan")


def normalise(name: str, values: np.ndarray, best: float) -> np.ndarray:
    if name == "reliability":
        return values
    if best != best:  # no candidate has this quantity
        return np.zeros(values.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (best + _TINY) / (values + _TINY)
    return np.where(np.isnan(out), 0.0, out) if name == "carbon" else out


def score(c: Candidates, objective: Objective) -> np.ndarray:
    total = np.zeros(len(c))
    for name, w in objective.weights:
        values = quantity(c, name)
        total += w * normalise(name, values, best_of(c, name, values))
    return total


def _values(key: Key, idx: np.ndarray) -> np.ndarray:
    return key(idx) if callable(key) else np.take(key, idx)


def top_k_lex(keys: list[Key], k: int) -> np.ndarray:
    """Indices of the k lexicographically smallest rows by `keys` (first key first), in order; O(n) per key.

    The first key is an array; later keys may be functions of an index array (evaluated on ties only).
    """
    n = keys[0].shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    cand: np.ndarray | None = None  # None: every row (the first key is read as it is, without a gather)
    chosen: list[np.ndarray] = []
    need = k
    for key in keys:
        size = n if cand is None else cand.shape[0]
        if size <= need:
            break
        vals = key if cand is None else _values(key, cand)
        kth = np.partition(vals, need - 1)[need - 1]
        below = np.flatnonzero(vals < kth)
        chosen.append(below if cand is None else cand[below])
        need -= int(below.size)
        tied = np.flatnonzero(vals == kth)
        cand = tied if cand is None else cand[tied]
    if cand is None:
        cand = np.arange(n)
    final = np.concatenate([*chosen, cand])
    order = np.lexsort([_values(key, final) for key in reversed(keys)])
    return final[order][:k]


def rank_keys(c: Candidates, objective: Objective, offer_id: np.ndarray) -> tuple[list[Key], np.ndarray | None]:
    """Sort keys for the objective, and the full score array when the profile mixes scorers."""
    ids: Key = lambda idx: np.take(offer_id, np.take(c.row, idx))  # noqa: E731
    nodes: Key = lambda idx: np.take(c.nodes, idx)  # noqa: E731
    cost: Key = lambda idx: np.take(c.cost, idx)  # noqa: E731
    if len(objective.weights) == 1:
        name = objective.weights[0][0]
        if name == "cost":
            return [c.cost, ids, nodes], None
        primary = quantity(c, name)
        if name == "carbon":
            primary = np.where(np.isnan(primary), np.inf, primary)
        elif name == "reliability":
            primary = -primary
        return [primary, cost, ids, nodes], None
    scores = score(c, objective)
    return [-scores, cost, ids, nodes], scores


def rank(c: Candidates, keys: list[Key], offer_id: np.ndarray, k: int) -> np.ndarray:
    """Candidate indices of the best configuration of each of the top-k offers, best first."""
    if c.one_per_offer:
        return top_k_lex(keys, k)
    want = k
    while True:
        top = top_k_lex(keys, want)
        _, first = np.unique(offer_id[c.row[top]], return_index=True)
        picked = top[np.sort(first)]
        if picked.shape[0] >= k or top.shape[0] >= len(c):
            return picked[:k]
        want = min(len(c), want * 4)
