"""One hardware vocabulary: any alias resolves to one canonical accelerator, or says why it cannot.

Resolution order, first hit wins:
1. an override from `alias_overrides.csv` (a convention every catalog here shares);
2. an alias (or canonical name) that belongs to exactly one accelerator;
3. a name shared by several accelerators, or a family name ("A100" = the 40 and 80 GB, PCIe and SXM parts):
   ambiguous, with the candidates listed;
4. otherwise unknown, with did-you-mean suggestions.
Matching ignores case, punctuation, spaces and leading vendor words ("NVIDIA", "Tesla", "AMD Instinct").
"""

from __future__ import annotations

import csv
import difflib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from broker.data import DATA_DIR
from broker.hardware.catalog import AcceleratorSpec, default_accelerators

VENDOR_WORDS = ("nvidia", "tesla", "geforce", "amd", "instinct", "intel", "habana", "huawei", "hygon",
                "cambricon", "kunlunxin", "baidu")
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def _tokens(name: str) -> list[str]:
    toks = _TOKEN.findall(name.casefold())
    while len(toks) > 1 and toks[0] in VENDOR_WORDS:
        toks = toks[1:]
    return toks


def normalize(name: str) -> str:
    """'NVIDIA A100-SXM4-80GB' -> 'a100sxm480gb'; 'Tesla T4' -> 't4'."""
    return "".join(_tokens(name))


@dataclass(frozen=True, slots=True)
class Resolution:
    query: str
    status: str  # "exact" | "ambiguous" | "unknown"
    candidates: tuple[str, ...]  # canonical names; exactly one when status == "exact"
    suggestions: tuple[str, ...] = ()

    @property
    def canonical(self) -> str | None:
        return self.candidates[0] if self.status == "exact" else None

    def message(self) -> str:
        if self.status == "exact":
            return f"'{self.query}' is {self.candidates[0]}"
        if self.status == "ambiguous":
            return f"'{self.query}' is ambiguous: it could be {', '.join(self.candidates)}"
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        return f"unknown accelerator '{self.query}'{hint}"


class Vocabulary:
    def __init__(self, specs: Iterable[AcceleratorSpec], overrides: dict[str, str] | None = None):
        self.specs = tuple(specs)
        self.by_name = {s.canonical_name: s for s in self.specs}
        self.by_slug = {s.slug: s for s in self.specs}
        self._names: dict[str, set[str]] = defaultdict(set)
        self._token_sets: dict[str, list[frozenset[str]]] = defaultdict(list)
        self._display: dict[str, str] = {}
        for spec in self.specs:
            for alias in (spec.canonical_name, spec.slug, *spec.aliases):
                key = normalize(alias)
                if not key:
                    continue
                self._names[key].add(spec.canonical_name)
                self._display.setdefault(key, alias)
                self._token_sets[spec.canonical_name].append(frozenset(_tokens(alias)))
        self._overrides = {normalize(k): v for k, v in (overrides or {}).items()}
        unknown = set(self._overrides.values()) - set(self.by_name)
        if unknown:
            raise ValueError(f"alias overrides name unknown accelerators: {sorted(unknown)}")
        self._order = {s.canonical_name: i for i, s in enumerate(self.specs)}

    def resolve(self, query: str) -> Resolution:
        query = (query or "").strip()
        key = normalize(query)
        if not key:
            return Resolution(query, "unknown", ())
        if key in self._overrides:
            return Resolution(query, "exact", (self._overrides[key],))
        owners = self._names.get(key, set())
        if len(owners) == 1:
            return Resolution(query, "exact", tuple(owners))
        family = self._family(query)
        candidates = owners | family
        if len(candidates) == 1:
            return Resolution(query, "exact", tuple(candidates))
        if candidates:
            return Resolution(query, "ambiguous", self._sorted(candidates))
        return Resolution(query, "unknown", (), self.suggest(query))

    def _family(self, query: str) -> set[str]:
        """Accelerators whose names contain every word of the query, e.g. 'A100' or 'Ascend 910'."""
        wanted = frozenset(_tokens(query))
        if not wanted:
            return set()
        return {name for name, sets in self._token_sets.items() if any(wanted <= s for s in sets)}

    def _sorted(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(names, key=self._order.__getitem__))

    def suggest(self, query: str, limit: int = 3) -> tuple[str, ...]:
        key = normalize(query)
        close = difflib.get_close_matches(key, list(self._names), n=limit * 3, cutoff=0.6)
        out: list[str] = []
        for match in close:
            for name in self._sorted(self._names[match]):
                if name not in out:
                    out.append(name)
        return tuple(out[:limit])

    def expand(self, query: str) -> tuple[str, ...]:
        """Every canonical name the query could mean ("any of"), or () when unknown."""
        return self.resolve(query).candidates


def load_overrides() -> dict[str, str]:
    with open(DATA_DIR / "alias_overrides.csv", newline="", encoding="utf-8") as fh:
        return {r["alias"]: r["canonical_name"] for r in csv.DictReader(fh)}


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    return Vocabulary(default_accelerators(), load_overrides())
