"""Parse a request document into a Request, collecting field-level errors (RequestError)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from broker.engine import sizing
from broker.engine.parse_fields import Errors, accelerators, check_keys, choices, money, number, strings
from broker.engine.parse_workload import ALLOWED_LLM, BATCH_FIELDS, parse_hpc, parse_llm
from broker.engine.request import (
    DEFAULT_TOP_K,
    DURATION_KINDS,
    INTER_NODE,
    INTERCONNECTS,
    MAX_ACCELERATORS_PER_NODE,
    MAX_NODES,
    MAX_REPLICA_NODES,
    MAX_TOP_K,
    PROFILES,
    SCORERS,
    STACK_ALIASES,
    WORKLOAD_KINDS,
    LlmWorkload,
    Objective,
    Request,
    RequestError,
    Resources,
)
from broker.engine.specs import EngineSpecs, default_specs

RESOURCE_FIELDS = {
    "accelerator",
    "count",
    "nodes",
    "min_memory_gb",
    "interconnect",
    "inter_node",
    "vcpus",
    "ram_gb",
    "disk_gb",
}


def _resources(data: Any, err: Errors, specs: EngineSpecs) -> Resources:
    if data is None:
        return Resources()
    if not isinstance(data, Mapping):
        err.add("resources", "must be an object")
        return Resources()
    check_keys(data, RESOURCE_FIELDS, "resources.", err)
    return Resources(
        accelerators=accelerators(data.get("accelerator"), "resources.accelerator", err, specs),
        count=number(data.get("count"), "resources.count", err, integer=True, maximum=MAX_ACCELERATORS_PER_NODE),
        nodes=number(data.get("nodes"), "resources.nodes", err, integer=True, maximum=MAX_NODES),
        min_memory_gb=number(data.get("min_memory_gb"), "resources.min_memory_gb", err),
        interconnect=choices(data.get("interconnect"), "resources.interconnect", INTERCONNECTS, err),
        inter_node=choices(data.get("inter_node"), "resources.inter_node", INTER_NODE, err),
        vcpus=number(data.get("vcpus"), "resources.vcpus", err, allow_zero=True),
        ram_gb=number(data.get("ram_gb"), "resources.ram_gb", err, allow_zero=True),
        disk_gb=number(data.get("disk_gb"), "resources.disk_gb", err, allow_zero=True),
    )


def _objective(value: Any, err: Errors) -> Objective:
    if value is None:
        value = "cost"
    if isinstance(value, str):
        if value not in PROFILES:
            err.add("objective", f"must be one of {', '.join(PROFILES)} or an object of weights")
            return Objective("cost", (("cost", 1.0),))
        return Objective(value, tuple(PROFILES[value].items()))
    if isinstance(value, Mapping):
        weights = value.get("weights", value)
        if not isinstance(weights, Mapping) or not weights:
            err.add("objective", 'weights must be an object such as {"cost": 0.7, "carbon": 0.3}')
            return Objective("cost", (("cost", 1.0),))
        out = {}
        for k, v in weights.items():
            if k not in SCORERS:
                err.add(f"objective.{k}", f"unknown scorer; use {', '.join(SCORERS)}")
            elif (w := number(v, f"objective.{k}", err, allow_zero=True)) is not None:
                out[k] = w
        total = sum(out.values())
        if total <= 0:
            err.add("objective", "at least one weight must be greater than 0")
            return Objective("cost", (("cost", 1.0),))
        return Objective("explicit", tuple((k, w / total) for k, w in out.items() if w > 0))
    err.add("objective", "must be a profile name or an object of weights")
    return Objective("cost", (("cost", 1.0),))


def _deadline(value: Any, now: datetime, err: Errors) -> datetime | None:
    if value is None:
        return None
    try:
        deadline = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        deadline = None
    if deadline is None:
        err.add("deadline", "must be an ISO 8601 date-time, e.g. 2030-01-31T18:00:00Z")
        return None
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    if deadline <= now:
        err.add("deadline", f"is in the past ({deadline.isoformat()} <= now {now.isoformat()})")
        return None
    return deadline


TOP_FIELDS = {
    "resources",
    "workload",
    "duration_hours",
    "deadline",
    "max_price_per_hour",
    "max_total_usd",
    "regions_allowed",
    "regions_excluded",
    "countries_allowed",
    "countries_excluded",
    "interruptible_allowed",
    "min_provider_reliability",
    "software_stack",
    "objective",
    "top_k",
}


def parse_request(data: Any, *, now: datetime, specs: EngineSpecs | None = None) -> Request:
    """Validate a request document; raise RequestError naming every bad field."""
    specs = specs or default_specs()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    err = Errors()
    if not isinstance(data, Mapping):
        raise RequestError({"non_field_errors": ["the request must be a JSON object"]})
    check_keys(data, TOP_FIELDS, "", err)
    resources = _resources(data.get("resources"), err, specs)
    workload_data = data.get("workload")
    kind, workload = "resources", None
    batch_duration = None
    if workload_data is not None:
        if not isinstance(workload_data, Mapping) or workload_data.get("kind") not in WORKLOAD_KINDS:
            err.add("workload.kind", f"must be one of {', '.join(WORKLOAD_KINDS)}")
            err.raise_if_any()
        kind = workload_data["kind"]
        if kind in ALLOWED_LLM:
            workload = parse_llm(workload_data, kind, err, specs)
        elif kind == "hpc":
            workload = parse_hpc(workload_data, err, specs)
        else:
            check_keys(workload_data, BATCH_FIELDS, "workload.", err)
            batch_duration = number(workload_data.get("duration_hours"), "workload.duration_hours", err)
    elif data.get("resources") is None:
        err.add("workload", "give a workload or explicit resources")

    duration = number(data.get("duration_hours"), "duration_hours", err)
    if batch_duration is not None:
        if duration is not None and duration != batch_duration:
            err.add("workload.duration_hours", f"contradicts duration_hours ({duration:g})")
        duration = batch_duration
    deadline = _deadline(data.get("deadline"), now, err)
    to_deadline = (deadline - now).total_seconds() / 3600 if deadline else None
    time_limit = None
    if kind in DURATION_KINDS:
        if duration is None and to_deadline is None and "duration_hours" not in data and "deadline" not in data:
            err.add("duration_hours", f"required for {kind} requests (or give a deadline)")
        if duration is not None and to_deadline is not None and duration > to_deadline:
            err.add("duration_hours", f"{duration:g} h from now ends after the deadline ({to_deadline:.2f} h away)")
        if duration is None:
            duration = to_deadline
    else:
        limits = [x for x in (duration, to_deadline) if x is not None]
        time_limit, duration = (min(limits) if limits else None), None

    regions = {
        k: frozenset(strings(data.get(k), k, err))
        for k in ("regions_allowed", "regions_excluded", "countries_allowed", "countries_excluded")
    }
    for what in ("regions", "countries"):
        both = regions[f"{what}_allowed"] & regions[f"{what}_excluded"]
        if both:
            err.add(f"{what}_excluded", f"{', '.join(sorted(both))} also in {what}_allowed")
    countries = {k: frozenset(c.upper() for c in regions[k]) for k in ("countries_allowed", "countries_excluded")}
    stacks = []
    for s in strings(data.get("software_stack"), "software_stack", err):
        if s.lower() not in STACK_ALIASES:
            err.add("software_stack", f"unknown stack '{s}'; use {', '.join(sorted(set(STACK_ALIASES.values())))}")
        elif STACK_ALIASES[s.lower()] not in stacks:
            stacks.append(STACK_ALIASES[s.lower()])
    interruptible = data.get("interruptible_allowed", False)
    if not isinstance(interruptible, bool):
        err.add("interruptible_allowed", "must be true or false")
        interruptible = False
    reliability = number(
        data.get("min_provider_reliability"), "min_provider_reliability", err, allow_zero=True, maximum=1.0
    )
    top_k = number(data.get("top_k"), "top_k", err, integer=True, maximum=MAX_TOP_K) or DEFAULT_TOP_K
    request = Request(
        kind=kind,
        resources=resources,
        workload=workload,
        objective=_objective(data.get("objective"), err),
        duration_hours=duration,
        time_limit_hours=time_limit,
        deadline=deadline,
        max_price_per_hour=money(data.get("max_price_per_hour"), "max_price_per_hour", err),
        max_total_usd=money(data.get("max_total_usd"), "max_total_usd", err),
        regions_allowed=regions["regions_allowed"],
        regions_excluded=regions["regions_excluded"],
        countries_allowed=countries["countries_allowed"],
        countries_excluded=countries["countries_excluded"],
        interruptible_allowed=interruptible,
        min_provider_reliability=reliability,
        software_stack=tuple(stacks),
        top_k=top_k,
        raw=data,
    )
    err.raise_if_any()
    _check_fit(request, specs, err)
    err.raise_if_any()
    return request


def _check_fit(request: Request, specs: EngineSpecs, err: Errors) -> None:
    """A model that cannot fit on any allowed accelerator even at the largest configuration is a bad request."""
    w = request.workload
    if not isinstance(w, LlmWorkload):
        return
    names = request.resources.accelerators or specs.names
    memories = [m for n in names if (m := specs.memory_gb[specs.index[n]]) > 0]
    if not memories:
        return
    per_node = request.resources.count or MAX_ACCELERATORS_PER_NODE
    nodes = request.resources.nodes or (MAX_REPLICA_NODES if w.kind == "llm_inference" else MAX_NODES)
    largest = max(memories) * sizing.GB * sizing.USABLE_MEMORY_FRACTION * per_node * nodes
    if w.memory_bytes > largest:
        path = "workload.model" if w.model else "workload.params_b"
        err.add(
            path,
            f"needs {w.memory_bytes / sizing.GB:,.0f} GB, more than the largest possible configuration "
            f"({nodes} × {per_node} × {max(memories):g} GB) holds",
        )
