"""“What do you need to run?”: one short form per workload template, turned into an engine request document.

Each template (serve an LLM, fine-tune, train, HPC, raw GPUs) shows a few fields with sensible defaults plus
the shared constraints. The form checks types and ranges; the engine's parser checks meaning, and its error
paths (`workload.model`, `resources.count`, ...) are mapped back onto the form's fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django import forms

from broker.engine.parse_workload import INFERENCE_PRECISIONS, TRAINING_PRECISIONS
from broker.engine.request import INTERCONNECTS, MAX_TOP_K
from broker.engine.specs import default_specs


@dataclass(frozen=True)
class Template:
    key: str
    label: str
    kind: str
    intro: str
    fields: tuple[str, ...]
    initial: dict[str, Any] = field(default_factory=dict)


COMMON_FIELDS = ("objective", "max_price_per_hour", "max_total_usd", "countries_allowed", "regions_allowed",
                 "min_provider_reliability", "interruptible_allowed", "top_k")
COMMON_INITIAL = {"objective": "cost", "top_k": "20"}

TEMPLATES: dict[str, Template] = {t.key: t for t in (
    Template("serve", "Serve an LLM", "llm_inference",
             "Host a model for inference. We size memory for the weights and the KV cache of your traffic.",
             ("model", "precision", "context_length", "concurrent_sequences", "tokens_per_second",
              "duration_hours"),
             {"model": "llama-3.1-70b", "precision": "fp16", "context_length": "4096",
              "concurrent_sequences": "16", "duration_hours": "24"}),
    Template("finetune", "Fine-tune", "fine_tuning",
             "Adapt a model to your data. LoRA trains a small fraction of the weights; full updates all of them.",
             ("model", "method", "training_tokens", "precision", "finish_within_hours"),
             {"model": "llama-3.1-8b", "method": "lora", "training_tokens": "100M", "precision": "bf16"}),
    Template("train", "Train", "llm_training",
             "Pre-train or continue training. Runtime is estimated from the FLOPs of your token budget.",
             ("model", "params_b", "training_tokens", "precision", "finish_within_hours"),
             {"model": "llama-3.1-8b", "training_tokens": "20B", "precision": "bf16"}),
    Template("hpc", "HPC job", "hpc",
             "A double-precision (FP64) job, sized by node-hours measured on a reference machine.",
             ("node_hours", "reference_accelerator", "reference_count", "finish_within_hours"),
             {"node_hours": "100", "reference_accelerator": "NVIDIA A100-SXM4-80GB", "reference_count": "8"}),
    Template("gpus", "Raw GPUs", "resources",
             "Just machines: name the accelerator, how many per node, how many nodes and for how long.",
             ("accelerator", "count", "nodes", "min_memory_gb", "interconnect", "duration_hours"),
             {"accelerator": "H100", "count": "8", "nodes": "1", "duration_hours": "24"}),
)}
DEFAULT_TEMPLATE = "serve"

# Engine error path -> form field (paths not listed map to a field of the same name, or to the form).
ENGINE_PATHS = {
    "workload.model": "model", "workload.params_b": "params_b", "workload.precision": "precision",
    "workload.context_length": "context_length", "workload.concurrent_sequences": "concurrent_sequences",
    "workload.tokens_per_second": "tokens_per_second", "workload.training_tokens": "training_tokens",
    "workload.method": "method", "workload.fp64_pflop": "node_hours", "workload.node_hours": "node_hours",
    "workload.reference_accelerator": "reference_accelerator", "workload.reference_count": "reference_count",
    "resources.accelerator": "accelerator", "resources.count": "count", "resources.nodes": "nodes",
    "resources.min_memory_gb": "min_memory_gb", "resources.interconnect": "interconnect",
    "workload.duration_hours": "duration_hours",
}

SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
TOKENS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMbBgGtT]?)\s*$")


def parse_tokens(text: str) -> float:
    """'100M' -> 1e8, '20B' -> 2e10, '1.5T' -> 1.5e12, '5000' -> 5000. ValueError otherwise."""
    match = TOKENS_RE.match(text or "")
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * SUFFIXES[match.group(2).lower()]


def _model_choices() -> list[tuple[str, str]]:
    return [(m.key, f"{m.name} ({m.params_b:g}B)") for m in default_specs().models.models]


def _list(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class RecommendForm(forms.Form):
    template = forms.ChoiceField(choices=[(k, t.label) for k, t in TEMPLATES.items()], widget=forms.HiddenInput)
    # LLM workloads
    model = forms.ChoiceField(label="Model", required=False)
    params_b = forms.FloatField(label="…or a custom size (billion parameters)", required=False, min_value=0.01,
                                help_text="Overrides the model's size; its architecture is used for the rest.")
    precision = forms.ChoiceField(label="Precision", choices=[(p, p) for p in INFERENCE_PRECISIONS])
    context_length = forms.IntegerField(label="Context length (tokens)", required=False, min_value=1)
    concurrent_sequences = forms.IntegerField(label="Concurrent requests", required=False, min_value=1,
                                              help_text="Sequences served at the same time; sizes the KV cache.")
    tokens_per_second = forms.FloatField(label="Throughput needed (tokens/s)", required=False, min_value=0.001,
                                         help_text="Optional; leave empty to be shown what each option delivers.")
    method = forms.ChoiceField(label="Method", choices=[("lora", "LoRA"), ("full", "Full fine-tune")])
    training_tokens = forms.CharField(label="Training tokens", max_length=20,
                                      help_text="e.g. 100M, 20B or 1.5T.")
    # HPC
    node_hours = forms.FloatField(label="Node-hours on the reference machine", min_value=0.001)
    reference_accelerator = forms.CharField(label="Reference accelerator", max_length=120)
    reference_count = forms.IntegerField(label="Accelerators per reference node", min_value=1, max_value=64)
    # raw resources
    accelerator = forms.CharField(label="Accelerator(s)", max_length=300, required=False,
                                  help_text="One or more, comma-separated: H100, MI300X. Empty means any.")
    count = forms.IntegerField(label="Accelerators per node", required=False, min_value=1, max_value=64)
    nodes = forms.IntegerField(label="Nodes", required=False, min_value=1, max_value=1024)
    min_memory_gb = forms.FloatField(label="Min. memory per accelerator (GB)", required=False, min_value=0.001)
    interconnect = forms.ChoiceField(label="Interconnect in the node", required=False,
                                     choices=[("", "any"), *((c, c) for c in INTERCONNECTS)])
    # time
    duration_hours = forms.FloatField(label="For how long (hours)", min_value=0.01)
    finish_within_hours = forms.FloatField(label="Must finish within (hours)", required=False, min_value=0.01,
                                           help_text="Optional deadline, counted from now.")
    # constraints shared by every template
    objective = forms.ChoiceField(label="Optimise for", choices=[
        ("cost", "lowest cost"), ("time", "fastest"), ("carbon", "lowest carbon"), ("balanced", "balanced")])
    max_price_per_hour = forms.DecimalField(label="Max. price per hour, all nodes (USD)", required=False,
                                            min_value=Decimal("0.0001"), max_digits=12, decimal_places=4)
    max_total_usd = forms.DecimalField(label="Budget for the whole job (USD)", required=False,
                                       min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    countries_allowed = forms.CharField(label="Only in countries", required=False, max_length=200,
                                        help_text="ISO codes, comma-separated: US, DE, FI.")
    regions_allowed = forms.CharField(label="Only in regions", required=False, max_length=500,
                                      help_text="Region keys or prefixes, comma-separated.")
    min_provider_reliability = forms.DecimalField(label="Min. provider reliability (0–1)", required=False,
                                                  min_value=Decimal(0), max_value=Decimal(1), decimal_places=3)
    interruptible_allowed = forms.BooleanField(label="Interruptible (spot) capacity is fine", required=False)
    top_k = forms.ChoiceField(label="Show up to", choices=[("10", "10 options"), ("20", "20 options"),
                                                           (str(MAX_TOP_K), f"{MAX_TOP_K} options")])

    def __init__(self, *args: Any, template: str = DEFAULT_TEMPLATE, **kwargs: Any):
        self.spec = TEMPLATES.get(template) or TEMPLATES[DEFAULT_TEMPLATE]
        kwargs.setdefault("initial", {**COMMON_INITIAL, **self.spec.initial, "template": self.spec.key})
        super().__init__(*args, **kwargs)
        keep = {"template", *self.spec.fields, *COMMON_FIELDS}
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        if "model" in self.fields:
            self.fields["model"].choices = ([("", "custom size (below)")] if "params_b" in self.fields else []) \
                + _model_choices()
            self.fields["model"].required = "params_b" not in self.fields
        if self.spec.key in ("finetune", "train") and "precision" in self.fields:
            self.fields["precision"].choices = [(p, p) for p in TRAINING_PRECISIONS]

    @classmethod
    def initial_data(cls, template: str) -> dict[str, str]:
        spec = TEMPLATES.get(template) or TEMPLATES[DEFAULT_TEMPLATE]
        return {**COMMON_INITIAL, **spec.initial, "template": spec.key}

    @property
    def template_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.spec.fields]

    @property
    def constraint_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in COMMON_FIELDS]

    def clean_training_tokens(self) -> float | None:
        text = self.cleaned_data.get("training_tokens", "")
        try:
            value = parse_tokens(text)
        except ValueError:
            raise forms.ValidationError("Enter a number with an optional K, M, B or T suffix, e.g. 20B.") from None
        if value <= 0:
            raise forms.ValidationError("Enter more than 0 tokens.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "params_b" in self.fields and not data.get("model") and data.get("params_b") is None \
                and "model" not in self.errors:
            self.add_error("params_b", "Choose a model or give a size.")
        return data

    # ------------------------------------------------------------------------------------- document
    def document(self) -> dict[str, Any]:
        """The engine request document for the cleaned data (call after is_valid())."""
        d = self.cleaned_data
        kind = self.spec.kind
        doc: dict[str, Any] = {}
        if kind in ("llm_inference", "fine_tuning", "llm_training"):
            workload: dict[str, Any] = {"kind": kind}
            if d.get("model"):
                workload["model"] = d["model"]
            if d.get("params_b") is not None:
                workload["params_b"] = d["params_b"]
            workload["precision"] = d["precision"]
            for name in ("context_length", "concurrent_sequences", "tokens_per_second", "training_tokens"):
                if d.get(name) is not None:
                    workload[name] = d[name]
            if kind == "fine_tuning":
                workload["method"] = d["method"]
            doc["workload"] = workload
        elif kind == "hpc":
            doc["workload"] = {"kind": "hpc", "node_hours": d["node_hours"],
                               "reference_accelerator": d["reference_accelerator"],
                               "reference_count": d["reference_count"]}
        else:
            resources: dict[str, Any] = {}
            if _list(d.get("accelerator", "")):
                resources["accelerator"] = _list(d["accelerator"])
            for name in ("count", "nodes", "min_memory_gb"):
                if d.get(name) is not None:
                    resources[name] = d[name]
            if d.get("interconnect"):
                resources["interconnect"] = d["interconnect"]
            doc["resources"] = resources
        if d.get("duration_hours") is not None:
            doc["duration_hours"] = d["duration_hours"]
        if d.get("finish_within_hours") is not None:
            doc["duration_hours"] = d["finish_within_hours"]  # for job kinds the engine reads it as a time limit
        doc["objective"] = d["objective"]
        for name in ("max_price_per_hour", "max_total_usd"):
            if d.get(name) is not None:
                doc[name] = str(d[name])
        for name in ("countries_allowed", "regions_allowed"):
            if _list(d.get(name, "")):
                doc[name] = _list(d[name])
        if d.get("min_provider_reliability") is not None:
            doc["min_provider_reliability"] = float(d["min_provider_reliability"])
        if d.get("interruptible_allowed"):
            doc["interruptible_allowed"] = True
        doc["top_k"] = int(d["top_k"])
        return doc

    def add_engine_errors(self, fields: dict[str, list[str]]) -> None:
        """Put the engine parser's field errors beside the form fields they came from."""
        for path, messages in fields.items():
            name = ENGINE_PATHS.get(path, path)
            if name == "duration_hours" and "duration_hours" not in self.fields:
                name = "finish_within_hours"
            for message in messages:
                self.add_error(name if name in self.fields else None,
                               message if name in self.fields else f"{path}: {message}")
