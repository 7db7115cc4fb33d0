"""Per-snapshot row index: offers grouped by node type, cheapest first, so a request touches only what can qualify.

Built once with the snapshot (a few sorts); the hot path then works on the rows of the node types that pass (or
fail exactly one node-type filter) and counts the rest from per-node-type, per-region and per-provider totals.
Within a node type, every on-demand figure at a fixed node count (price per hour, total) is non-decreasing in the
price, so the cheapest configurations of a node type are a prefix of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_AVAIL_CAP = (1 << 31) - 1


@dataclass(frozen=True)
class RowIndex:
    by_nt: np.ndarray  # int64 row numbers sorted by (node type, on-demand price units, offer id)
    start: np.ndarray  # int64, one more than node types: rows of type t are by_nt[start[t]:start[t + 1]]
    nt_avail: np.ndarray  # int64 sorted keys (node type << 32 | nodes available): counts rows below a node need
    region_rows: np.ndarray  # int64 rows per region
    provider_rows: np.ndarray  # int64 rows per provider
    min_rental_rows: np.ndarray  # int64 rows (ascending) with an effective minimum rental > 0
    identity: bool  # the rows already are in (node type, price, offer id) order: by_nt is 0..n-1

    @property
    def nt_rows(self) -> np.ndarray:
        return np.diff(self.start)

    def rows_of(self, nts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For an ordered snapshot (identity): the rows of node types `nts` (ascending) and each row's node type."""
        lengths = self.start[nts + 1] - self.start[nts]
        total = int(lengths.sum())
        if total == self.by_nt.size:
            return np.arange(total), np.repeat(nts, lengths)
        shift = self.start[nts] - (np.cumsum(lengths) - lengths)  # row = position in the result + shift
        return np.arange(total) + np.repeat(shift, lengths), np.repeat(nts, lengths)

    def in_price_order(self, rows: np.ndarray, node_type: np.ndarray) -> np.ndarray:
        """`rows` rearranged in (node type, price, offer id) order."""
        m = self.start.size - 1
        mark = np.zeros(self.by_nt.size, dtype=bool)
        mark[rows] = True
        present = np.flatnonzero(np.bincount(np.take(node_type, rows), minlength=m))
        spans = self.start[present + 1] - self.start[present]
        if spans.sum() * 2 > self.by_nt.size or present.size > 256:
            candidates = self.by_nt
        else:
            s, e = self.start[present].tolist(), self.start[present + 1].tolist()
            candidates = np.concatenate([self.by_nt[a:b] for a, b in zip(s, e, strict=True)])
        return candidates[np.take(mark, candidates)]

    def below(self, need: np.ndarray) -> np.ndarray:
        """Per node type t: how many of its rows have fewer nodes available than need[t] (need >= 0)."""
        m = self.start.size - 1
        keys = (np.arange(m, dtype=np.int64) << 32) | np.minimum(need, _AVAIL_CAP).astype(np.int64)
        return np.searchsorted(self.nt_avail, keys, side="left") - self.start[:-1]


def build_index(
    node_type: np.ndarray,
    price_units: np.ndarray,
    offer_id: np.ndarray,
    nodes_available: np.ndarray,
    region: np.ndarray,
    provider: np.ndarray,
    min_rental_eff: np.ndarray,
    node_types: int,
    regions: int,
    providers: int,
) -> RowIndex:
    by_nt = np.lexsort((offer_id, price_units, node_type)).astype(np.int64, copy=False)
    identity = bool((by_nt == np.arange(by_nt.size)).all())
    per_type = np.bincount(node_type, minlength=node_types)  # longer if a code is out of the table's range
    start = np.zeros(per_type.size + 1, dtype=np.int64)
    np.cumsum(per_type, out=start[1:])
    avail = np.clip(nodes_available, 0, _AVAIL_CAP).astype(np.int64)
    nt_avail = np.sort((node_type.astype(np.int64) << 32) | avail)
    return RowIndex(
        by_nt=by_nt,
        start=start,
        nt_avail=nt_avail,
        region_rows=np.bincount(region, minlength=regions).astype(np.int64),
        provider_rows=np.bincount(provider, minlength=providers).astype(np.int64),
        min_rental_rows=np.flatnonzero(min_rental_eff > 0),
        identity=identity,
    )


def price_prefix(groups: np.ndarray, units: np.ndarray, k: int) -> np.ndarray:
    """Positions (ascending) of the first k elements of each run of `groups` plus any later ones tied on `units`.

    Elements are in (group, units) order; the k cheapest by any per-group non-decreasing function of the
    price, ties included, are among them.
    """
    n = groups.shape[0]
    if n <= k:
        return np.arange(n)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(groups[1:], groups[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    stop = np.minimum(starts + k, ends)
    # extend a run past its k-th element while the next one has the same price
    open_ = np.flatnonzero(stop < ends)
    while open_.size:
        tied = units[stop[open_]] == units[stop[open_] - 1]
        open_ = open_[tied]
        stop[open_] += 1
        open_ = open_[stop[open_] < ends[open_]]
    lengths = stop - starts
    shift = starts - (np.cumsum(lengths) - lengths)
    return np.arange(int(lengths.sum())) + np.repeat(shift, lengths)
