"""Reference data the engine needs, as arrays indexed by accelerator (built once, shared by every request)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from broker.data import DATA_DIR
from broker.engine.models_table import ModelTable, default_models
from broker.hardware.catalog import AcceleratorSpec, default_accelerators
from broker.hardware.vocabulary import Vocabulary, default_vocabulary

EFFECTIVE_PERF_CSV = DATA_DIR / "effective_perf.csv"
PRECISIONS = ("fp64", "fp64_tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")
REFERENCE_ACCELERATOR = "NVIDIA H100-SXM5-80GB"  # effective_perf.csv normalises to it
CONFIDENCE_LEVELS = ("high", "medium", "low")


@dataclass(frozen=True, slots=True)
class Measurement:
    value: float  # per accelerator, in the row's unit
    precision_bytes: float  # bytes per weight of the submitted precision (FP8 1, FP4 0.5, BF16 2)
    label: str  # "MLPerf Llama2-70B-99 Offline (Inference v4.1 (2024-08))"


@dataclass(frozen=True)
class EngineSpecs:
    names: tuple[str, ...]
    index: dict[str, int]
    memory_gb: np.ndarray
    bandwidth_gbps: np.ndarray
    tdp_w: np.ndarray
    peak: dict[str, np.ndarray]  # precision -> dense peak TFLOPS (nan = not published)
    spec_confidence: tuple[str, ...]
    stack_family: tuple[str, ...]
    matmul_efficiency_vs_h100: np.ndarray  # MAMF/peak relative to H100's, capped at 1; 1 where unmeasured
    inference_measured: dict[str, dict[int, Measurement]]  # benchmark family -> acc index -> tokens/s per acc
    training_measured_tflops: dict[int, Measurement]  # BF16 achieved TFLOPS per accelerator in LLM training
    hpc_measured_tflops: dict[int, Measurement]  # FP64 achieved TFLOPS per accelerator
    models: ModelTable
    vocabulary: Vocabulary
    _name_arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _lookup_cache: dict[str, tuple] = field(default_factory=dict, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.names)

    def lookup(self, names: tuple[str, ...]) -> np.ndarray:
        """Spec index for each name (-1 when the accelerator is not in the table); the last answer is kept, since
        every request asks about the same snapshot's node types."""
        cached = self._lookup_cache.get("last")
        if cached is not None and (cached[0] is names or cached[0] == names):
            return cached[1]
        out = np.array([self.index.get(n, -1) for n in names], dtype=np.int64)
        out.flags.writeable = False
        self._lookup_cache["last"] = (names, out)
        return out

    def spec(self, name: str) -> AcceleratorSpec | None:
        return self.vocabulary.by_name.get(name)


def _f(v: str | None) -> float:
    v = (v or "").strip()
    try:
        return float(v) if v else float("nan")
    except ValueError:
        return float("nan")


def _precision_bytes(text: str) -> float:
    t = (text or "").upper()
    if "FP4" in t:
        return 0.5
    if "FP8" in t or "INT8" in t:
        return 1.0
    return 2.0


def _family(benchmark: str) -> str:
    """'MLPerf Llama2-70B-99.9' -> 'MLPerf Llama2-70B' (accuracy targets share a family)."""
    for suffix in ("-99.9", "-99"):
        if benchmark.endswith(suffix):
            return benchmark[: -len(suffix)]
    return benchmark


def load_perf(path: Path, index: dict[str, int]) -> tuple[dict, dict, dict, dict]:
    inference: dict[str, dict[int, Measurement]] = {}
    training: dict[int, Measurement] = {}
    hpc: dict[int, Measurement] = {}
    mamf: dict[int, float] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        i = index.get(r["accelerator"].strip())
        per = _f(r.get("per_accelerator_value"))
        if i is None or np.isnan(per):
            continue
        label = f"{r['benchmark']} {r['scenario']} ({r.get('round_or_date') or r.get('source_type')})".strip()
        cls, unit = r["workload_class"], r["unit"]
        if (
            cls == "llm_inference"
            and unit == "tokens/s"
            and r["benchmark"].startswith("MLPerf")
            and r["scenario"] == "Offline"
        ):
            fam = _family(r["benchmark"])
            inference.setdefault(fam, {})[i] = Measurement(per, _precision_bytes(r["precision"]), label)
        elif cls == "llm_training" and unit == "TFLOPS/GPU":
            best = training.get(i)
            if best is None or per > best.value:
                training[i] = Measurement(per, 2.0, label)
        elif cls == "hpc_fp64" and unit == "TFLOPS":
            hpc[i] = Measurement(per, 8.0, label)
        elif cls == "matmul_microbench" and "BF16" in r["benchmark"] and "MAMF" in r["benchmark"]:
            mamf[i] = per
    return inference, training, hpc, mamf


def build_specs(
    accelerators: tuple[AcceleratorSpec, ...],
    vocabulary: Vocabulary,
    models: ModelTable,
    perf_path: Path = EFFECTIVE_PERF_CSV,
) -> EngineSpecs:
    names = tuple(a.canonical_name for a in accelerators)
    index = {n: i for i, n in enumerate(names)}

    def arr(values) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

    peak = {p: arr(a.peak(p) for a in accelerators) for p in PRECISIONS}
    inference, training, hpc, mamf = load_perf(perf_path, index)
    eff = np.ones(len(names))
    ref = index.get(REFERENCE_ACCELERATOR)
    bf16 = np.where(np.isnan(peak["bf16"]), peak["fp16"], peak["bf16"])
    if ref is not None and ref in mamf:
        ref_frac = mamf[ref] / bf16[ref]
        for i, achieved in mamf.items():
            if bf16[i] > 0:
                eff[i] = min(1.0, (achieved / bf16[i]) / ref_frac)
    return EngineSpecs(
        names=names,
        index=index,
        memory_gb=arr(a.memory_gb for a in accelerators),
        bandwidth_gbps=arr(a.memory_bandwidth_gbps for a in accelerators),
        tdp_w=arr(a.tdp_w for a in accelerators),
        peak=peak,
        spec_confidence=tuple(a.confidence if a.confidence in CONFIDENCE_LEVELS else "low" for a in accelerators),
        stack_family=tuple(a.stack_family for a in accelerators),
        matmul_efficiency_vs_h100=eff,
        inference_measured=inference,
        training_measured_tflops=training,
        hpc_measured_tflops=hpc,
        models=models,
        vocabulary=vocabulary,
    )


@lru_cache(maxsize=1)
def default_specs() -> EngineSpecs:
    return build_specs(default_accelerators(), default_vocabulary(), default_models())
