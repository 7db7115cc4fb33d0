"""Bundled table of well-known LLMs (architecture from each model's public config.json)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from broker.data import DATA_DIR

LLM_MODELS_CSV = DATA_DIR / "llm_models.csv"


@dataclass(frozen=True, slots=True)
class LlmModel:
    key: str
    name: str
    aliases: tuple[str, ...]
    params_b: float  # total parameters, billions (all experts for MoE)
    active_params_b: float  # parameters used per token, billions
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int | None
    head_dim: int | None
    attention: str  # mha | gqa | mla
    kv_latent_dim: int | None  # MLA: elements cached per token per layer
    max_context: int
    benchmark: str  # effective_perf.csv benchmark family measured on this model ('' when none)
    source: str

    @property
    def kv_elements_per_token_per_layer(self) -> int:
        """2·H_kv·d_h (K and V) for MHA/GQA; the cached latent width for MLA."""
        if self.attention == "mla":
            return int(self.kv_latent_dim or 0)
        return 2 * int(self.kv_heads or 0) * int(self.head_dim or 0)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "", name.casefold().split("/")[-1])


class ModelTable:
    def __init__(self, models: tuple[LlmModel, ...]):
        self.models = models
        self._by_key: dict[str, LlmModel] = {}
        for m in models:
            for name in (m.key, m.name, *m.aliases):
                self._by_key.setdefault(_key(name), m)

    def get(self, name: str) -> LlmModel | None:
        return self._by_key.get(_key(name or ""))

    def nearest(self, params_b: float) -> LlmModel:
        """The bundled model with the closest total parameter count (architecture stand-in for params-only requests)."""
        return min(self.models, key=lambda m: (abs(m.params_b - params_b), m.key))

    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.models)


def _int(v: str) -> int | None:
    v = (v or "").strip()
    return int(v) if v else None


def load_models(path: Path = LLM_MODELS_CSV) -> ModelTable:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    models = tuple(
        LlmModel(
            key=r["key"],
            name=r["name"],
            aliases=tuple(a for a in r["aliases"].split(";") if a),
            params_b=float(r["params_b"]),
            active_params_b=float(r["active_params_b"]),
            layers=int(r["layers"]),
            hidden_size=int(r["hidden_size"]),
            attention_heads=int(r["attention_heads"]),
            kv_heads=_int(r["kv_heads"]),
            head_dim=_int(r["head_dim"]),
            attention=r["attention"],
            kv_latent_dim=_int(r["kv_latent_dim"]),
            max_context=int(r["max_context"]),
            benchmark=r["benchmark"].strip(),
            source=r["source"],
        )
        for r in rows
    )
    return ModelTable(models)


@lru_cache(maxsize=1)
def default_models() -> ModelTable:
    return load_models()
