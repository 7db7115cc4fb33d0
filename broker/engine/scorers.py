"""Preferences as named scorers normalised to 0–1 (1 = best among the candidates), weighted by a profile.

    cost        = min cost / cost
    time        = min hours / hours
    carbon      = min kg CO2e / kg CO2e   (unknown carbon scores 0)
    reliability = the provider's observed reliability (unknown: 0.5)
Ties break deterministically on (score desc, total cost asc, offer id asc).
"""

from __future__ import annotations

import numpy as np

from broker.engine.estimate import Candidates
from broker.engine.request import Objective

UNKNOWN_RELIABILITY = 0.5
_TINY = 1e-12


def _ratio(values: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(values)
    if not valid.any():
        return np.zeros(values.shape)
    best = values[valid].min()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, (best + _TINY) / (values + _TINY), 0.0)


def component(c: Candidates, name: str) -> np.ndarray:
    if name == "cost":
        return _ratio(c.cost)
    if name == "time":
        return _ratio(c.hours)
    if name == "carbon":
        return _ratio(c.carbon_kg)
    if name == "reliability":
        return np.where(np.isnan(c.reliability), UNKNOWN_RELIABILITY, c.reliability)
    raise KeyError(name)


def score(c: Candidates, objective: Objective) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    parts = {name: component(c, name) for name, w in objective.weights if w > 0}
    total = np.zeros(len(c))
    for name, w in objective.weights:
        if w > 0:
            total += w * parts[name]
    return total, parts


def top_k_lex(keys: list[np.ndarray], k: int) -> np.ndarray:
    """Indices of the k lexicographically smallest rows by `keys` (first key first), in order; O(n) per key."""
    n = keys[0].shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    cand = np.arange(n)
    chosen: list[np.ndarray] = []
    need = k
    for key in keys:
        if cand.shape[0] <= need:
            break
        vals = key[cand]
        kth = np.partition(vals, need - 1)[need - 1]
        below = vals < kth
        chosen.append(cand[below])
        need -= int(below.sum())
        cand = cand[vals == kth]
    final = np.concatenate([*chosen, cand])
    order = np.lexsort([key[final] for key in reversed(keys)])
    return final[order][:k]


def rank(c: Candidates, scores: np.ndarray, offer_id: np.ndarray, k: int) -> np.ndarray:
    """Candidate indices of the best configuration of each of the top-k offers, best first."""
    ids = offer_id[c.row]
    keys = [-scores, c.cost, ids, c.nodes]
    want = k
    while True:
        top = top_k_lex(keys, want)
        _, first = np.unique(ids[top], return_index=True)
        picked = top[np.sort(first)]
        if picked.shape[0] >= k or top.shape[0] >= len(c):
            return picked[:k]
        want = min(len(c), want * 4)
