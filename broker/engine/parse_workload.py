"""Parse the `workload` object: LLM inference, training and fine-tuning, HPC."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.engine import sizing
from broker.engine.parse_fields import Errors, accelerators, check_keys, number
from broker.engine.request import (
    DEFAULT_CONCURRENCY,
    DEFAULT_CONTEXT,
    MAX_ACCELERATORS_PER_NODE,
    HpcWorkload,
    LlmWorkload,
)
from broker.engine.specs import EngineSpecs

LLM_FIELDS = {
    "kind",
    "model",
    "params_b",
    "active_params_b",
    "precision",
    "kv_precision",
    "context_length",
    "concurrent_sequences",
    "tokens_per_second",
    "training_tokens",
    "method",
    "trainable_fraction",
}
ALLOWED_LLM = {
    "llm_inference": LLM_FIELDS - {"training_tokens", "method", "trainable_fraction"},
    "llm_training": LLM_FIELDS
    - {"kv_precision", "context_length", "concurrent_sequences", "tokens_per_second", "method", "trainable_fraction"},
    "fine_tuning": LLM_FIELDS - {"kv_precision", "context_length", "concurrent_sequences", "tokens_per_second"},
}
HPC_FIELDS = {"kind", "fp64_pflop", "node_hours", "reference_accelerator", "reference_count"}
BATCH_FIELDS = {"kind", "duration_hours"}
INFERENCE_PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")
TRAINING_PRECISIONS = ("fp32", "fp16", "bf16", "fp8")


def precision_of(value: Any, path: str, options: tuple[str, ...], default: str, err: Errors) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in options:
        err.add(path, f"must be one of {', '.join(options)}")
        return default
    return value.lower()


def parse_llm(data: Mapping[str, Any], kind: str, err: Errors, specs: EngineSpecs) -> LlmWorkload | None:
    check_keys(data, ALLOWED_LLM[kind], "workload.", err)
    model_name, params = data.get("model"), number(data.get("params_b"), "workload.params_b", err)
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
    active = number(data.get("active_params_b"), "workload.active_params_b", err)
    if active is None:
        active = model.active_params_b if model is not None and params is None else params_b
    if active > params_b:
        err.add("workload.active_params_b", f"cannot exceed params_b ({params_b:g})")
    arch = model or specs.models.nearest(params_b)
    training = kind != "llm_inference"
    precision = precision_of(
        data.get("precision"),
        "workload.precision",
        TRAINING_PRECISIONS if training else INFERENCE_PRECISIONS,
        "bf16" if training else "fp16",
        err,
    )
    kv_default = "fp8" if precision == "fp8" else ("fp32" if precision == "fp32" else "fp16")
    kv_precision = precision_of(
        data.get("kv_precision"), "workload.kv_precision", ("fp32", "fp16", "bf16", "fp8"), kv_default, err
    )
    context = number(data.get("context_length"), "workload.context_length", err, integer=True, maximum=10_000_000)
    if context is not None and context > arch.max_context and model is not None:
        err.add("workload.context_length", f"{model.name} supports at most {arch.max_context} tokens")
    concurrency = number(
        data.get("concurrent_sequences"), "workload.concurrent_sequences", err, integer=True, maximum=100_000
    )
    tps = number(data.get("tokens_per_second"), "workload.tokens_per_second", err)
    tokens = number(data.get("training_tokens"), "workload.training_tokens", err)
    if training and tokens is None and "training_tokens" not in data:
        err.add("workload.training_tokens", "required for training and fine-tuning")
    method = "full"
    if kind == "fine_tuning":
        method = precision_of(data.get("method"), "workload.method", ("full", "lora"), "full", err)
    if kind == "fine_tuning" and method == "lora":
        precision = (
            precision_of(
                data.get("precision"), "workload.precision", (*TRAINING_PRECISIONS, "int8", "int4"), "bf16", err
            )
            if data.get("precision") is not None
            else precision
        )
    fraction = number(data.get("trainable_fraction"), "workload.trainable_fraction", err, maximum=1.0)
    return LlmWorkload(
        kind=kind,
        model=model.key if model else None,
        params_b=params_b,
        active_params_b=active,
        layers=arch.layers,
        kv_elements_per_layer=arch.kv_elements_per_token_per_layer,
        architecture_from=arch.key,
        benchmark=arch.benchmark if model is not None else "",
        precision=precision,
        kv_precision=kv_precision,
        context_length=context or min(DEFAULT_CONTEXT, arch.max_context),
        concurrent_sequences=concurrency or DEFAULT_CONCURRENCY,
        tokens_per_second=tps,
        training_tokens=tokens,
        method=method,
        trainable_fraction=fraction or sizing.LORA_TRAINABLE_FRACTION,
    )


def parse_hpc(data: Mapping[str, Any], err: Errors, specs: EngineSpecs) -> HpcWorkload | None:
    from broker.engine.perf import hpc_flops_per_accelerator

    check_keys(data, HPC_FIELDS, "workload.", err)
    pflop = number(data.get("fp64_pflop"), "workload.fp64_pflop", err)
    node_hours = number(data.get("node_hours"), "workload.node_hours", err)
    if (pflop is None) == (node_hours is None):
        if "fp64_pflop" not in data and "node_hours" not in data or pflop is not None:
            err.add("workload.fp64_pflop", "give exactly one of fp64_pflop or node_hours (at a reference machine)")
        return None
    if pflop is not None:
        return HpcWorkload(fp64_pflop=pflop)
    ref = accelerators(data.get("reference_accelerator"), "workload.reference_accelerator", err, specs)
    count = (
        number(
            data.get("reference_count"),
            "workload.reference_count",
            err,
            integer=True,
            maximum=MAX_ACCELERATORS_PER_NODE,
        )
        or 8
    )
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
