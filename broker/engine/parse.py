"""Parse a request document into a Request, collecting field-level errors (RequestError)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.engine import sizing
from broker.engine.request import (
    DEFAULT_CONCURRENCY,
    DEFAULT_CONTEXT,
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
    HpcWorkload,
    LlmWorkload,
    Objective,
    Request,
    RequestError,
    Resources,
)
from broker.engine.specs import EngineSpecs, default_specs


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.fields.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            raise RequestError(self.fields)


def _number(value: Any, path: str, err: _Errors, *, integer: bool = False, allow_zero: bool = False,
            minimum: float | None = None, maximum: float | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        err.add(path, "must be a number")
        return None
    try:
        number = float(value)
    except ValueError:
        err.add(path, "must be a number")
        return None
    if not math.isfinite(number):
        err.add(path, "must be a finite number")
        return None
    if integer and number != int(number):
        err.add(path, "must be a whole number")
        return None
    if number < 0:
        err.add(path, f"must be positive, got {value}")
        return None
    if number == 0 and not allow_zero:
        err.add(path, "must be greater than 0")
        return None
    if minimum is not None and number < minimum:
        err.add(path, f"must be at least {minimum:g}")
        return None
    if maximum is not None and number > maximum:
        err.add(path, f"must be at most {maximum:g}")
        return None
    return int(number) if integer else number


def _money(value: Any, path: str, err: _Errors) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        err.add(path, "must be a decimal amount")
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        err.add(path, "must be a decimal amount")
        return None
    if not amount.is_finite() or amount <= 0:
        err.add(path, "must be greater than 0")
        return None
    return amount


def _strings(value: Any, path: str, err: _Errors) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    err.add(path, "must be a string or a list of strings")
    return ()


def _check_keys(data: Mapping[str, Any], allowed: set[str], prefix: str, err: _Errors) -> None:
    for key in data:
        if key not in allowed:
            err.add(f"{prefix}{key}", "unknown field")


def _choices(value: Any, path: str, options: tuple[str, ...], err: _Errors) -> tuple[str, ...]:
    out = []
    for v in _strings(value, path, err):
        if v.lower() in ("any", "*"):
            return ()
        if v.lower() not in options:
            err.add(path, f"'{v}' is not one of {', '.join(options)}")
        else:
            out.append(v.lower())
    return tuple(out)


def _accelerators(value: Any, path: str, err: _Errors, specs: EngineSpecs) -> tuple[str, ...]:
    names: list[str] = []
    for query in _strings(value, path, err):
        if query.lower() in ("any", "*"):
            return ()
        resolution = specs.vocabulary.resolve(query)
        if resolution.status == "unknown":
            err.add(path, resolution.message())
        for name in resolution.candidates:  # ambiguous family names mean any of them
            if name not in names:
                names.append(name)
    return tuple(names)


RESOURCE_FIELDS = {"accelerator", "count", "nodes", "min_memory_gb", "interconnect", "inter_node", "vcpus",
                   "ram_gb", "disk_gb"}


def _resources(data: Any, err: _Errors, specs: EngineSpecs) -> Resources:
    if data is None:
        return Resources()
    if not isinstance(data, Mapping):
        err.add("resources", "must be an object")
        return Resources()
    _check_keys(data, RESOURCE_FIELDS, "resources.", err)
    return Resources(
        accelerators=_accelerators(data.get("accelerator"), "resources.accelerator", err, specs),
        count=_number(data.get("count"), "resources.count", err, integer=True, maximum=MAX_ACCELERATORS_PER_NODE),
        nodes=_number(data.get("nodes"), "resources.nodes", err, integer=True, maximum=MAX_NODES),
        min_memory_gb=_number(data.get("min_memory_gb"), "resources.min_memory_gb", err),
        interconnect=_choices(data.get("interconnect"), "resources.interconnect", INTERCONNECTS, err),
        inter_node=_choices(data.get("inter_node"), "resources.inter_node", INTER_NODE, err),
        vcpus=_number(data.get("vcpus"), "resources.vcpus", err, allow_zero=True),
        ram_gb=_number(data.get("ram_gb"), "resources.ram_gb", err, allow_zero=True),
        disk_gb=_number(data.get("disk_gb"), "resources.disk_gb", err, allow_zero=True),
    )


LLM_FIELDS = {"kind", "model", "params_b", "active_params_b", "precision", "kv_precision", "context_length",
              "concurrent_sequences", "tokens_per_second", "training_tokens", "method", "trainable_fraction"}
ALLOWED_LLM = {
    "llm_inference": LLM_FIELDS - {"training_tokens", "method", "trainable_fraction"},
    "llm_training": LLM_FIELDS - {"kv_precision", "context_length", "concurrent_sequences", "tokens_per_second",
                                  "method", "trainable_fraction"},
    "fine_tuning": LLM_FIELDS - {"kv_precision", "context_length", "concurrent_sequences", "tokens_per_second"},
}
HPC_FIELDS = {"kind", "fp64_pflop", "node_hours", "reference_accelerator", "reference_count"}
BATCH_FIELDS = {"kind", "duration_hours"}
INFERENCE_PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")
TRAINING_PRECISIONS = ("fp32", "fp16", "bf16", "fp8")


def _precision(value: Any, path: str, options: tuple[str, ...], default: str, err: _Errors) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in options:
        err.add(path, f"must be one of {', '.join(options)}")
        return default
    return value.lower()


def _llm(data: Mapping[str, Any], kind: str, err: _Errors, specs: EngineSpecs) -> LlmWorkload | None:
    _check_keys(data, ALLOWED_LLM[kind], "workload.", err)
    model_name, params = data.get("model"), _number(data.get("params_b"), "workload.params_b", err)
    model = None
    if model_name is not None:
        if not isinstance(model_name, str) or (model := specs.models.get(model_name)) is None:
            err.add("workload.model", f"unknown model '{model_name}'; known: {', '.join(specs.models.keys())}")
            return None
    elif params is None:
        if "params_b" not in data:
            err.add("workload.model", "give a model name or params_b")
        return None
    params_b = params if params is not None else model.params_b
    active = _number(data.get("active_params_b"), "workload.active_params_b", err)
    if active is None:
        active = model.active_params_b if model is not None and params is None else params_b
    if active > params_b:
        err.add("workload.active_params_b", f"cannot exceed params_b ({params_b:g})")
    arch = model or specs.models.nearest(params_b)
    training = kind != "llm_inference"
    precision = _precision(data.get("precision"), "workload.precision",
                           TRAINING_PRECISIONS if training else INFERENCE_PRECISIONS, "bf16" if training else "fp16",
                           err)
    kv_default = "fp8" if precision == "fp8" else ("fp32" if precision == "fp32" else "fp16")
    kv_precision = _precision(data.get("kv_precision"), "workload.kv_precision", ("fp32", "fp16", "bf16", "fp8"),
                              kv_default, err)
    context = _number(data.get("context_length"), "workload.context_length", err, integer=True, maximum=10_000_000)
    if context is not None and context > arch.max_context and model is not None:
        err.add("workload.context_length", f"{model.name} supports at most {arch.max_context} tokens")
    concurrency = _number(data.get("concurrent_sequences"), "workload.concurrent_sequences", err, integer=True,
                          maximum=100_000)
    tps = _number(data.get("tokens_per_second"), "workload.tokens_per_second", err)
    tokens = _number(data.get("training_tokens"), "workload.training_tokens", err)
    if training and tokens is None and "training_tokens" not in data:
        err.add("workload.training_tokens", "required for training and fine-tuning")
    method = "full"
    if kind == "fine_tuning":
        method = _precision(data.get("method"), "workload.method", ("full", "lora"), "full", err)
    if kind == "fine_tuning" and method == "lora":
        precision = _precision(data.get("precision"), "workload.precision", (*TRAINING_PRECISIONS, "int8", "int4"),
                               "bf16", err) if data.get("precision") is not None else precision
    fraction = _number(data.get("trainable_fraction"), "workload.trainable_fraction", err, maximum=1.0)
    return LlmWorkload(
        kind=kind, model=model.key if model else None, params_b=params_b, active_params_b=active,
        layers=arch.layers, kv_elements_per_layer=arch.kv_elements_per_token_per_layer, architecture_from=arch.key,
        benchmark=arch.benchmark if model is not None else "", precision=precision, kv_precision=kv_precision,
        context_length=context or min(DEFAULT_CONTEXT, arch.max_context),
        concurrent_sequences=concurrency or DEFAULT_CONCURRENCY, tokens_per_second=tps, training_tokens=tokens,
        method=method, trainable_fraction=fraction or sizing.LORA_TRAINABLE_FRACTION,
    )


def _hpc(data: Mapping[str, Any], err: _Errors, specs: EngineSpecs) -> HpcWorkload | None:
    from broker.engine.perf import hpc_flops_per_accelerator

    _check_keys(data, HPC_FIELDS, "workload.", err)
    pflop = _number(data.get("fp64_pflop"), "workload.fp64_pflop", err)
    node_hours = _number(data.get("node_hours"), "workload.node_hours", err)
    if (pflop is None) == (node_hours is None):
        if "fp64_pflop" not in data and "node_hours" not in data or pflop is not None:
            err.add("workload.fp64_pflop", "give exactly one of fp64_pflop or node_hours (at a reference machine)")
        return None
    if pflop is not None:
        return HpcWorkload(fp64_pflop=pflop)
    ref = _accelerators(data.get("reference_accelerator"), "workload.reference_accelerator", err, specs)
    count = _number(data.get("reference_count"), "workload.reference_count", err, integer=True,
                    maximum=MAX_ACCELERATORS_PER_NODE) or 8
    if len(ref) != 1:
        if not err.fields.get("workload.reference_accelerator"):
            err.add("workload.reference_accelerator", "name one accelerator (node_hours are measured on it)")
        return None
    flops = hpc_flops_per_accelerator(specs).value[specs.index[ref[0]]]
    if not flops > 0:
        err.add("workload.reference_accelerator", f"{ref[0]} has no FP64 figure to convert node_hours")
        return None
    pflop = node_hours * 3600 * count * flops / 1e15
    return HpcWorkload(fp64_pflop=pflop, reference=f"{node_hours:g} node-hours on {count}× {ref[0]}")


def _objective(value: Any, err: _Errors) -> Objective:
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
            err.add("objective", "weights must be an object such as {\"cost\": 0.7, \"carbon\": 0.3}")
            return Objective("cost", (("cost", 1.0),))
        out = {}
        for k, v in weights.items():
            if k not in SCORERS:
                err.add(f"objective.{k}", f"unknown scorer; use {', '.join(SCORERS)}")
            elif (w := _number(v, f"objective.{k}", err, allow_zero=True)) is not None:
                out[k] = w
        total = sum(out.values())
        if total <= 0:
            err.add("objective", "at least one weight must be greater than 0")
            return Objective("cost", (("cost", 1.0),))
        return Objective("explicit", tuple((k, w / total) for k, w in out.items() if w > 0))
    err.add("objective", "must be a profile name or an object of weights")
    return Objective("cost", (("cost", 1.0),))


def _deadline(value: Any, now: datetime, err: _Errors) -> datetime | None:
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


TOP_FIELDS = {"resources", "workload", "duration_hours", "deadline", "max_price_per_hour", "max_total_usd",
              "regions_allowed", "regions_excluded", "countries_allowed", "countries_excluded",
              "interruptible_allowed", "min_provider_reliability", "software_stack", "objective", "top_k"}


def parse_request(data: Any, *, now: datetime, specs: EngineSpecs | None = None) -> Request:
    """Validate a request document; raise RequestError naming every bad field."""
    specs = specs or default_specs()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    err = _Errors()
    if not isinstance(data, Mapping):
        raise RequestError({"non_field_errors": ["the request must be a JSON object"]})
    _check_keys(data, TOP_FIELDS, "", err)
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
            workload = _llm(workload_data, kind, err, specs)
        elif kind == "hpc":
            workload = _hpc(workload_data, err, specs)
        else:
            _check_keys(workload_data, BATCH_FIELDS, "workload.", err)
            batch_duration = _number(workload_data.get("duration_hours"), "workload.duration_hours", err)
    elif data.get("resources") is None:
        err.add("workload", "give a workload or explicit resources")

    duration = _number(data.get("duration_hours"), "duration_hours", err)
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

    regions = {k: frozenset(_strings(data.get(k), k, err)) for k in
               ("regions_allowed", "regions_excluded", "countries_allowed", "countries_excluded")}
    for what in ("regions", "countries"):
        both = regions[f"{what}_allowed"] & regions[f"{what}_excluded"]
        if both:
            err.add(f"{what}_excluded", f"{', '.join(sorted(both))} also in {what}_allowed")
    countries = {k: frozenset(c.upper() for c in regions[k]) for k in ("countries_allowed", "countries_excluded")}
    stacks = []
    for s in _strings(data.get("software_stack"), "software_stack", err):
        if s.lower() not in STACK_ALIASES:
            err.add("software_stack", f"unknown stack '{s}'; use {', '.join(sorted(set(STACK_ALIASES.values())))}")
        elif STACK_ALIASES[s.lower()] not in stacks:
            stacks.append(STACK_ALIASES[s.lower()])
    interruptible = data.get("interruptible_allowed", False)
    if not isinstance(interruptible, bool):
        err.add("interruptible_allowed", "must be true or false")
        interruptible = False
    reliability = _number(data.get("min_provider_reliability"), "min_provider_reliability", err, allow_zero=True,
                          maximum=1.0)
    top_k = _number(data.get("top_k"), "top_k", err, integer=True, maximum=MAX_TOP_K) or DEFAULT_TOP_K
    request = Request(
        kind=kind, resources=resources, workload=workload, objective=_objective(data.get("objective"), err),
        duration_hours=duration, time_limit_hours=time_limit, deadline=deadline,
        max_price_per_hour=_money(data.get("max_price_per_hour"), "max_price_per_hour", err),
        max_total_usd=_money(data.get("max_total_usd"), "max_total_usd", err),
        regions_allowed=regions["regions_allowed"], regions_excluded=regions["regions_excluded"],
        countries_allowed=countries["countries_allowed"], countries_excluded=countries["countries_excluded"],
        interruptible_allowed=interruptible, min_provider_reliability=reliability, software_stack=tuple(stacks),
        top_k=top_k, raw=data,
    )
    err.raise_if_any()
    _check_fit(request, specs, err)
    err.raise_if_any()
    return request


def _check_fit(request: Request, specs: EngineSpecs, err: _Errors) -> None:
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
        err.add(path, f"needs {w.memory_bytes / sizing.GB:,.0f} GB, more than the largest possible configuration "
                      f"({nodes} × {per_node} × {max(memories):g} GB) holds")
