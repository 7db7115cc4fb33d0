"""A small query language for offers, in the style of `vastai search offers`.

    accelerator=H100 count>=8 memory_gb>=80 region in [us-east,eu-north] price_per_hour<=30
    interconnect=nvlink

A query is clauses separated by spaces; every clause must hold (AND). A clause is `field op value`:

* operators: `= != < <= > >= in notin` (`==` is read as `=`); spaces around symbolic operators are optional,
  `in` / `notin` need spaces and take a list `[a,b,...]`;
* values are bare words, "double-quoted strings" (for spaces; `\\"` escapes a quote) or lists;
* units are part of the field name (`memory_gb`, `price_per_hour` in USD, `network_gbps`), so a number is
  never reinterpreted;
* ordering comparisons apply only to numeric fields; text, choice and accelerator fields take `= != in notin`.

Fields whose value is a name are normalized here, so the database layer only sees canonical values:
* `accelerator` resolves through the hardware vocabulary. An ambiguous name ("A100" = 40 or 80 GB, PCIe or
  SXM) means "any of" its candidates, and the query carries a note saying so; an unknown name is an error
  with did-you-mean suggestions.
* `vendor`, `stack`, `interconnect`, `inter_node` are choices (case-insensitive).
* `region` matches a region key or energy zone exactly, or as a hyphen-separated prefix (`us-east` matches
  `us-east-virginia`); a trailing `*` makes it a plain prefix (`cn-*`). `country` is an ISO alpha-2 code.
* `provider` is a provider slug; a trailing `*` makes it a prefix.

After parsing, `=`/`!=` on non-numeric fields become `in`/`notin` with a tuple of canonical values.
A clause on a value the offer does not have (say `network_gbps>=100` where the speed is unknown) is false,
except `!=`/`notin`, which are true. Errors are `QueryError`s whose messages name the valid choices.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from broker.hardware.vocabulary import Vocabulary, default_vocabulary

MAX_QUERY_LENGTH = 1000
MAX_CLAUSES = 30
MAX_LIST_ITEMS = 50

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "notin")
EQUALITY_OPERATORS = ("=", "!=", "in", "notin")
LIST_OPERATORS = ("in", "notin")

NUMBER, INTEGER, TEXT, CHOICE, ACCELERATOR = "number", "integer", "text", "choice", "accelerator"
_KIND_WORD = {TEXT: "text", CHOICE: "choice", ACCELERATOR: "accelerator"}

VENDORS = ("nvidia", "amd", "intel", "huawei", "hygon", "cambricon", "kunlunxin")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    minimum: Decimal | None = Decimal(0)
    maximum: Decimal | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in (NUMBER, INTEGER)

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS if self.numeric else EQUALITY_OPERATORS


def _f(name: str, kind: str, help: str, **kw) -> FieldSpec:
    return FieldSpec(name, kind, help, **kw)


_FIELD_LIST = (
    _f("accelerator", ACCELERATOR,
       "Accelerator model; any alias (H100, MI300X, Ascend910B); an ambiguous name means any of its models"),
    _f("vendor", CHOICE, "Accelerator vendor", choices=VENDORS),
    _f("stack", CHOICE, "Software stack family the accelerator needs",
       choices=("cuda", "rocm", "cann", "dtk", "neuware", "gaudi", "xpu")),
    _f("count", INTEGER, "Accelerators per node", maximum=Decimal(64)),
    _f("memory_gb", NUMBER, "Memory per accelerator, GB"),
    _f("total_memory_gb", NUMBER, "Accelerator memory per node (count x memory_gb), GB"),
    _f("bf16_tflops", NUMBER, "Dense BF16 peak per accelerator, TFLOPS"),
    _f("fp64_tflops", NUMBER, "Dense FP64 peak per accelerator, TFLOPS"),
    _f("vcpus", INTEGER, "Host vCPUs per node"),
    _f("ram_gb", NUMBER, "Host RAM per node, GB"),
    _f("disk_gb", NUMBER, "Local disk per node, GB"),
    _f("interconnect", CHOICE, "Link between the accelerators of a node",
       choices=("nvlink", "xgmi", "hccs", "pcie", "none")),
    _f("inter_node", CHOICE, "Link between nodes", choices=("infiniband", "roce", "ethernet", "none")),
    _f("network_gbps", NUMBER, "Node network bandwidth, Gbit/s"),
    _f("region", TEXT, "Region key or energy zone; 'us-east' matches 'us-east-virginia'; 'cn-*' is a prefix"),
    _f("country", TEXT, "ISO 3166 alpha-2 country code of the region"),
    _f("carbon_gco2_per_kwh", NUMBER, "Grid carbon intensity of the region, gCO2e/kWh"),
    _f("price_per_hour", NUMBER, "On-demand price per node-hour, USD", maximum=Decimal(100000)),
    _f("price_per_accelerator_hour", NUMBER, "On-demand price per accelerator-hour, USD",
       maximum=Decimal(100000)),
    _f("interruptible_price_per_hour", NUMBER, "Interruptible (spot) price per node-hour, USD",
       maximum=Decimal(100000)),
    _f("nodes_available", INTEGER, "Nodes of this type available now"),
    _f("min_rental_hours", NUMBER, "Shortest rental the provider accepts, hours"),
    _f("provider", TEXT, "Provider slug; 'lambda*' is a prefix"),
    _f("reliability", NUMBER, "Provider reliability score, 0-1", maximum=Decimal(1)),
)
FIELDS: dict[str, FieldSpec] = {f.name: f for f in _FIELD_LIST}
SORTABLE_FIELDS: tuple[str, ...] = tuple(f.name for f in _FIELD_LIST if f.numeric)

# Names people bring from other tools. They are never accepted silently (units differ); they only
# make the error message point at the right field.
_HINTS = {
    "gpu": "accelerator", "gpu_name": "accelerator", "gpu_model": "accelerator", "model": "accelerator",
    "num_gpus": "count", "gpus": "count", "gpu_count": "count", "accelerator_count": "count",
    "gpu_ram": "memory_gb", "gpu_memory": "memory_gb", "vram": "memory_gb", "memory": "memory_gb",
    "accelerator_memory_gb": "memory_gb", "gpu_total_ram": "total_memory_gb",
    "cpu_cores": "vcpus", "cpus": "vcpus", "cpu_ram": "ram_gb", "ram": "ram_gb", "disk_space": "disk_gb",
    "disk": "disk_gb", "dph": "price_per_hour", "dph_total": "price_per_hour", "price": "price_per_hour",
    "inet_down": "network_gbps", "inet_up": "network_gbps", "geolocation": "country", "location": "region",
    "reliability2": "reliability", "cuda_vers": "stack", "num_nodes": "nodes_available",
    "co2": "carbon_gco2_per_kwh",
}

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OP_CHARS = "<>=!~"
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*\*?$")


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """How much one query may ask for; deployers tune them (settings QUERY_MAX_*, read by the callers)."""

    max_length: int = MAX_QUERY_LENGTH
    max_clauses: int = MAX_CLAUSES
    max_list_items: int = MAX_LIST_ITEMS


DEFAULT_LIMITS = QueryLimits()


class QueryError(ValueError):
    """A query that cannot be run. `position` is the character offset of the offending clause or token."""

    def __init__(self, message: str, *, position: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.position = position
        self.field = field


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    op: str
    value: Decimal | str | tuple

    def __str__(self) -> str:
        if isinstance(self.value, tuple):
            return f"{self.field} {self.op} [{','.join(str(v) for v in self.value)}]"
        return f"{self.field}{self.op}{self.value}"


@dataclass(frozen=True, slots=True)
class Query:
    clauses: tuple[Clause, ...]
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- lexing
@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word" | "string" | "op" | "list"
    text: str
    pos: int
    items: tuple[str, ...] = ()


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The quoted string starting at text[start] == '"'; returns (content, index after the closing quote)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise QueryError(f"unterminated quoted string starting at position {start}", position=start)


def _read_list(text: str, start: int) -> tuple[tuple[str, ...], int]:
    items: list[str] = []
    i = start + 1
    current: list[str] = []
    quoted = False
    while i < len(text):
        ch = text[i]
        if ch == '"':
            value, i = _read_string(text, i)
            current.append(value)
            quoted = True
            continue
        if ch in ",]":
            item = "".join(current).strip()
            if not item and not quoted:
                if ch == "]" and not items:
                    return (), i + 1
                raise QueryError(f"empty item in the list starting at position {start}", position=start)
            items.append(item)
            current, quoted = [], False
            if ch == "]":
                return tuple(items), i + 1
        elif ch == "[":
            raise QueryError(f"lists cannot be nested (position {i})", position=i)
        else:
            current.append(ch)
        i += 1
    raise QueryError(f"unterminated list starting at position {start}; close it with ']'", position=start)


def _tokens(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            value, end = _read_string(text, i)
            yield _Token("string", value, i)
            i = end
        elif ch == "[":
            items, end = _read_list(text, i)
            yield _Token("list", text[i:end], i, items)
            i = end
        elif ch in "],":
            raise QueryError(f"unexpected '{ch}' at position {i}", position=i)
        elif ch in _OP_CHARS:
            j = i
            while j < n and text[j] in _OP_CHARS:
                j += 1
            yield _Token("op", text[i:j], i)
            i = j
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _OP_CHARS + '[]",':
                j += 1
            yield _Token("word", text[i:j], i)
            i = j


# --------------------------------------------------------------------------------------------- parsing
def _operator(token: _Token | None) -> str | None:
    if token is None:
        return None
    if token.kind == "op":
        return "=" if token.text == "==" else token.text
    if token.kind == "word" and token.text.lower() in LIST_OPERATORS:
        return token.text.lower()
    return None


def unknown_field_message(name: str) -> str:
    hint = _HINTS.get(name.lower())
    if hint is None:
        close = difflib.get_close_matches(name.lower(), list(FIELDS), n=1, cutoff=0.75)
        hint = close[0] if close else None
    did_you_mean = f" (did you mean '{hint}'?)" if hint else ""
    return f"unknown field '{name}'{did_you_mean}; valid fields: {', '.join(FIELDS)}"


def invalid_operator_message(op: str) -> str:
    return f"operator '{op}' is not valid; use one of {' '.join(OPERATORS)}"


def parse(text: str | None, vocabulary: Vocabulary | None = None, limits: QueryLimits = DEFAULT_LIMITS) -> Query:
    """Parse a query string into clauses; a QueryError's message is meant for the person who typed it."""
    text = text or ""
    if len(text) > limits.max_length:
        raise QueryError(f"query is {len(text)} characters long; the limit is {limits.max_length}")
    vocabulary = vocabulary or default_vocabulary()
    tokens = list(_tokens(text))
    clauses: list[Clause] = []
    notes: list[str] = []
    i = 0
    while i < len(tokens):
        head = tokens[i]
        if head.kind != "word" or not _FIELD_RE.match(head.text):
            shown = head.text if head.kind != "string" else f'"{head.text}"'
            raise QueryError(f"expected a field name at position {head.pos}, found '{shown}'",
                             position=head.pos)
        spec = FIELDS.get(head.text)
        if spec is None:
            raise QueryError(unknown_field_message(head.text), position=head.pos, field=head.text)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        op = _operator(nxt)
        if op is None:
            if nxt is not None and nxt.kind == "op":
                raise QueryError(invalid_operator_message(nxt.text), position=nxt.pos, field=spec.name)
            raise QueryError(f"clause '{spec.name}' has no operator; write field op value, e.g. count>=8",
                             position=head.pos, field=spec.name)
        if op not in OPERATORS:
            raise QueryError(invalid_operator_message(op), position=nxt.pos, field=spec.name)
        if op not in spec.operators:
            raise QueryError(f"'{op}' does not apply to {_KIND_WORD[spec.kind]} field '{spec.name}'; "
                             f"use {' '.join(spec.operators)}", position=nxt.pos, field=spec.name)
        value_token = tokens[i + 2] if i + 2 < len(tokens) else None
        if value_token is None or value_token.kind == "op":
            raise QueryError(f"clause '{spec.name}{_spaced(op)}' has no value", position=head.pos,
                             field=spec.name)
        clause, note = _clause(spec, op, value_token, head.pos, vocabulary, limits.max_list_items)
        clauses.append(clause)
        if note:
            notes.append(note)
        if len(clauses) > limits.max_clauses:
            raise QueryError(f"query has more than {limits.max_clauses} clauses; the limit is {limits.max_clauses}",
                             position=head.pos)
        i += 3
    return Query(tuple(clauses), tuple(notes))


def _spaced(op: str) -> str:
    return f" {op} " if op in LIST_OPERATORS else op


def _clause(spec: FieldSpec, op: str, token: _Token, pos: int, vocabulary: Vocabulary,
            max_list_items: int = MAX_LIST_ITEMS) -> tuple[Clause, str]:
    written = f'"{token.text}"' if token.kind == "string" else token.text
    shown = f"{spec.name}{_spaced(op)}{written}"
    if op in LIST_OPERATORS:
        if token.kind != "list":
            raise QueryError(f"{shown}: '{op}' takes a list, e.g. {spec.name} {op} [a,b]",
                             position=pos, field=spec.name)
        if not token.items:
            raise QueryError(f"{shown}: the list is empty", position=pos, field=spec.name)
        if len(token.items) > max_list_items:
            raise QueryError(f"{spec.name} {op} [...]: the list has {len(token.items)} items; "
                             f"the limit is {max_list_items}", position=pos, field=spec.name)
        raw_values = token.items
    else:
        if token.kind == "list":
            raise QueryError(f"{shown}: '{op}' takes one value; use 'in' for a list",
                             position=pos, field=spec.name)
        raw_values = (token.text,)

    def fail(message: str) -> QueryError:
        return QueryError(f"{shown}: {message}", position=pos, field=spec.name)

    note = ""
    if spec.numeric:
        numbers = tuple(_number(spec, raw, fail) for raw in raw_values)
        value: Decimal | tuple = numbers if op in LIST_OPERATORS else numbers[0]
        return Clause(spec.name, op, value), note
    list_op = "notin" if op in ("!=", "notin") else "in"
    values: list[str] = []
    if spec.kind == ACCELERATOR:
        for raw in raw_values:
            resolution = vocabulary.resolve(raw)
            if resolution.status == "unknown":
                raise fail(resolution.message())
            if resolution.status == "ambiguous":
                verb = "matching" if list_op == "in" else "excluding"
                note = f"accelerator '{raw}' is ambiguous; {verb} any of {', '.join(resolution.candidates)}"
            values.extend(c for c in resolution.candidates if c not in values)
    elif spec.kind == CHOICE:
        for raw in raw_values:
            if raw.lower() not in spec.choices:
                raise fail(f"'{raw}' is not one of {', '.join(spec.choices)}")
            if raw.lower() not in values:
                values.append(raw.lower())
    elif spec.name == "country":
        for raw in raw_values:
            if not _COUNTRY_RE.match(raw):
                raise fail(f"'{raw}' is not a two-letter ISO country code such as US or DE")
            values.append(raw.upper())
    else:
        for raw in raw_values:
            if not _NAME_RE.match(raw):
                raise fail(f"'{raw}' is not a valid {spec.name} key (letters, digits, - _ . : /, "
                           f"and an optional trailing '*')")
            values.append(raw.lower())
    return Clause(spec.name, list_op, tuple(values)), note


def _number(spec: FieldSpec, raw: str, fail) -> Decimal:
    if not _NUMBER_RE.match(raw.strip()):
        raise fail(f"'{raw}' is not a number")
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:  # pragma: no cover - the regex only lets valid decimals through
        raise fail(f"'{raw}' is not a number") from None
    if spec.kind == INTEGER and value != value.to_integral_value():
        raise fail(f"'{raw}' is not a whole number")
    if spec.minimum is not None and value < spec.minimum:
        raise fail(f"{spec.name} cannot be less than {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise fail(f"{spec.name} cannot be more than {spec.maximum}")
    return value.to_integral_value() if spec.kind == INTEGER else value


def vendor_key(vendor: str) -> str:
    """'Huawei (HiSilicon)' -> 'huawei'; 'Intel (Habana)' -> 'intel'."""
    word = re.split(r"[\s(]", vendor.strip(), maxsplit=1)[0]
    return word.lower()


def describe_fields() -> str:
    """One line per field, for the API documentation."""
    lines = []
    for spec in _FIELD_LIST:
        extra = f" ({', '.join(spec.choices)})" if spec.choices else ""
        lines.append(f"- `{spec.name}` [{spec.kind}]: {spec.help}{extra}")
    return "\n".join(lines)
