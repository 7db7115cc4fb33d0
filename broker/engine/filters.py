"""Hard constraints as named filters: a reason code, the side that rejects, and whether relaxing could help.

Each filter owns one bit; an offer's rejection reasons are the OR of the bits of every filter it fails, computed
as boolean masks over the snapshot (node-type, region and provider filters are evaluated once per table row and
gathered; per-offer filters are vectorised over the offer columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Filter:
    code: str
    side: str  # "workload" (the request's constraint) | "provider" (the offer's or provider's policy)
    relaxable: bool  # could the customer change the request so this filter passes?
    description: str

    @property
    def bit(self) -> int:
        return 1 << FILTER_INDEX[self.code]


FILTERS: tuple[Filter, ...] = (
    Filter("accelerator", "workload", True, "accelerator not among those requested"),
    Filter("accelerator_count", "workload", True, "accelerators per node differ from the requested count"),
    Filter("accelerator_memory", "workload", True, "not enough accelerator memory"),
    Filter("interconnect", "workload", True, "intra-node interconnect not among those requested"),
    Filter("inter_node", "workload", True, "needs several nodes but the offer has no suitable inter-node fabric"),
    Filter("software_stack", "workload", True, "accelerator software stack not among those requested"),
    Filter("unsupported_workload", "workload", False, "no performance figure to estimate this workload"),
    Filter("vcpus", "workload", True, "fewer vCPUs per node than requested"),
    Filter("ram", "workload", True, "less host RAM per node than requested"),
    Filter("disk", "workload", True, "less disk per node than requested"),
    Filter("region", "workload", True, "region not allowed"),
    Filter("country", "workload", True, "country not allowed"),
    Filter("min_provider_reliability", "workload", True, "provider reliability below the minimum"),
    Filter("deadline", "workload", True, "cannot finish in time even with every available node"),
    Filter("max_price_per_hour", "workload", True, "configuration costs more per hour than allowed"),
    Filter("max_total_usd", "workload", True, "estimated total above the budget"),
    Filter("capacity", "provider", False, "fewer nodes available than the workload needs"),
    Filter("provider_workload_kind", "provider", False, "provider does not accept this kind of workload"),
    Filter("provider_min_rental", "provider", True, "requested duration shorter than the minimum rental"),
)
FILTER_INDEX = {f.code: i for i, f in enumerate(FILTERS)}
BY_CODE = {f.code: f for f in FILTERS}
BIT = {f.code: np.uint32(1 << i) for i, f in enumerate(FILTERS)}


def bits_where(mask: np.ndarray, code: str) -> np.ndarray:
    """uint32 array with the filter's bit where `mask` is True."""
    return np.where(mask, BIT[code], np.uint32(0)).astype(np.uint32, copy=False)


def codes_of(bits: int) -> tuple[str, ...]:
    return tuple(f.code for i, f in enumerate(FILTERS) if bits >> i & 1)


def single_failure(bits: np.ndarray) -> np.ndarray:
    """True where exactly one filter failed (a near miss)."""
    return (bits != 0) & ((bits & (bits - np.uint32(1))) == 0)


def count_by_reason(bits: np.ndarray, active: int) -> dict[str, int]:
    """Offers failing each filter (an offer failing two filters counts under both); only bits in `active`."""
    out = {}
    for i, f in enumerate(FILTERS):
        if active >> i & 1:
            n = int(np.count_nonzero(bits & np.uint32(1 << i)))
            if n:
                out[f.code] = n
    return out
