"""Reads of offers: the listed-offer search (query-language clauses -> one SQL query), a provider's offers.

The search is built to be one indexed query per page: clauses on the accelerator, region and provider become
`<fk>_id IN (SELECT id FROM <reference table> WHERE ...)` so the planner can use the (status, accelerator,
count, price) and (status, region, price) indexes; ordering is keyset (seek) pagination on (sort field, id),
so no page costs an OFFSET scan or a COUNT(*).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from operator import and_, or_

from django.db.models import F, FloatField, Q, QuerySet
from django.db.models.expressions import Combinable, ExpressionWrapper
from django.utils import timezone

from broker.hardware.vocabulary import default_vocabulary
from broker.query.language import FIELDS, INTEGER, SORTABLE_FIELDS, Clause, vendor_key
from marketplace.models import Accelerator, Offer, Provider, Region, User

DEFAULT_ORDERING = "price_per_hour"


@dataclass(frozen=True, slots=True)
class NumericColumn:
    path: str  # ORM path, or the name of an annotation
    nullable: bool = False
    float_column: bool = False


NUMERIC: dict[str, NumericColumn] = {
    "count": NumericColumn("accelerator_count"),
    "memory_gb": NumericColumn("accelerator_memory_gb", float_column=True),
    "total_memory_gb": NumericColumn("total_memory_gb", float_column=True),
    "bf16_tflops": NumericColumn("accelerator__bf16_tflops", nullable=True, float_column=True),
    "fp64_tflops": NumericColumn("accelerator__fp64_tflops", nullable=True, float_column=True),
    "vcpus": NumericColumn("vcpus"),
    "ram_gb": NumericColumn("ram_gb", float_column=True),
    "disk_gb": NumericColumn("disk_gb", float_column=True),
    "network_gbps": NumericColumn("network_gbps", nullable=True, float_column=True),
    "carbon_gco2_per_kwh": NumericColumn("region__grid_ci_gco2_per_kwh", nullable=True, float_column=True),
    "price_per_hour": NumericColumn("price_per_hour"),
    "price_per_accelerator_hour": NumericColumn("price_per_accelerator_hour"),
    "interruptible_price_per_hour": NumericColumn("interruptible_price_per_hour", nullable=True),
    "nodes_available": NumericColumn("nodes_available"),
    "min_rental_hours": NumericColumn("min_rental_hours"),
    "reliability": NumericColumn("provider__reliability_score", nullable=True),
}
assert set(NUMERIC) == set(SORTABLE_FIELDS), "every numeric query field needs a column"

# Columns the search result needs (everything else stays deferred).
SEARCH_COLUMNS = (
    "id", "name", "external_id", "accelerator_count", "accelerator_memory_gb", "vcpus", "ram_gb", "disk_gb",
    "interconnect", "inter_node", "network_gbps", "price_per_hour", "price_per_accelerator_hour",
    "interruptible_price_per_hour", "nodes_available", "min_rental_hours", "available_until", "status",
    "source", "upstream_cloud", "updated_at",
    "provider", "provider__slug", "provider__name", "provider__reliability_score",
    "provider__verification_status",
    "accelerator", "accelerator__canonical_name", "accelerator__vendor", "accelerator__stack_family",
    "accelerator__bf16_tflops", "accelerator__fp64_tflops",
    "region", "region__key", "region__country", "region__grid_ci_gco2_per_kwh",
)


def _total_memory() -> ExpressionWrapper:
    return ExpressionWrapper(F("accelerator_count") * F("accelerator_memory_gb"), output_field=FloatField())


def offer_queryset() -> QuerySet[Offer]:
    """Offers with what a result row shows: provider, accelerator and region joined, total memory computed."""
    return (Offer.objects.select_related("provider", "accelerator", "region").only(*SEARCH_COLUMNS)
            .annotate(total_memory_gb=_total_memory()))


# ---------------------------------------------------------------------------------------- clauses -> Q
def _numeric_q(column: NumericColumn, op: str, value: Decimal | tuple) -> Q:
    def prep(v: Decimal) -> Decimal | float | int:
        if column.float_column:
            return float(v)
        return int(v) if v == v.to_integral_value() and column.path in _INTEGER_PATHS else v

    if op in ("in", "notin"):
        q = Q(**{f"{column.path}__in": [prep(v) for v in value]})
    else:
        lookup = {"=": "exact", "!=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
        q = Q(**{f"{column.path}__{lookup}": prep(value)})
    return ~q if op in ("!=", "notin") else q


_INTEGER_PATHS = {NUMERIC[name].path for name, spec in FIELDS.items() if spec.kind == INTEGER}


def _vendor_names(keys: Iterable[str]) -> list[str]:
    wanted = set(keys)
    return sorted({s.vendor for s in default_vocabulary().specs if vendor_key(s.vendor) in wanted})


def _name_match(column: str, values: Sequence[str]) -> Q:
    """Exact, or hyphen-segment prefix ('us-east' -> 'us-east-virginia'); 'x*' is a plain prefix."""
    parts = []
    for value in values:
        if value.endswith("*"):
            parts.append(Q(**{f"{column}__startswith": value[:-1]}))
        else:
            parts.append(Q(**{column: value}) | Q(**{f"{column}__startswith": value + "-"}))
    return reduce(or_, parts)


def _text_q(field: str, values: tuple[str, ...]) -> Q:
    if field == "accelerator":
        return Q(accelerator_id__in=Accelerator.objects.filter(canonical_name__in=values).values("id"))
    if field == "vendor":
        return Q(accelerator_id__in=Accelerator.objects.filter(vendor__in=_vendor_names(values)).values("id"))
    if field == "stack":
        return Q(accelerator_id__in=Accelerator.objects.filter(stack_family__in=values).values("id"))
    if field in ("interconnect", "inter_node"):
        return Q(**{f"{field}__in": values})
    if field == "country":
        return Q(region_id__in=Region.objects.filter(country__in=values).values("id"))
    if field == "region":
        regions = Region.objects.filter(_name_match("key", values) | _name_match("energy_zone", values))
        return Q(region_id__in=regions.values("id"))
    if field == "provider":
        return Q(provider_id__in=Provider.objects.filter(_name_match("slug", values)).values("id"))
    raise ValueError(f"no column for query field {field!r}")  # the field table and this function disagree


def clause_q(clause: Clause) -> Q:
    if clause.field in NUMERIC:
        return _numeric_q(NUMERIC[clause.field], clause.op, clause.value)
    q = _text_q(clause.field, clause.value)
    return ~q if clause.op == "notin" else q


def filter_clauses(qs: QuerySet[Offer], clauses: Iterable[Clause]) -> QuerySet[Offer]:
    parts = [clause_q(c) for c in clauses]
    return qs.filter(reduce(and_, parts)) if parts else qs


# ----------------------------------------------------------------------------------- keyset ordering
@dataclass(frozen=True, slots=True)
class Position:
    """Where a page starts: after (or, when `backwards`, before) the row with this sort value and id."""

    ordering: str
    value: str | None
    id: int
    backwards: bool = False


def parse_ordering(ordering: str | None) -> tuple[str, bool]:
    """'-price_per_hour' -> ('price_per_hour', True). Raises ValueError listing the valid fields."""
    ordering = (ordering or DEFAULT_ORDERING).strip()
    name, descending = (ordering[1:], True) if ordering.startswith("-") else (ordering, False)
    if name not in NUMERIC:
        raise ValueError(f"cannot order by '{ordering}'; order by one of {', '.join(SORTABLE_FIELDS)} "
                         f"(prefix '-' for descending)")
    return name, descending


def _order_by(column: NumericColumn, descending: bool) -> list:
    expr: Combinable = F(column.path)
    tie = F("id").desc() if descending else F("id").asc()
    if column.nullable:
        primary = expr.desc(nulls_last=True) if descending else expr.asc(nulls_last=True)
    else:
        primary = expr.desc() if descending else expr.asc()
    return [primary, tie]


def _reversed_order_by(column: NumericColumn, descending: bool) -> list:
    expr: Combinable = F(column.path)
    tie = F("id").asc() if descending else F("id").desc()
    if column.nullable:
        primary = expr.asc(nulls_first=True) if descending else expr.desc(nulls_first=True)
    else:
        primary = expr.asc() if descending else expr.desc()
    return [primary, tie]


def _prep_position(column: NumericColumn, value: str) -> Decimal | float:
    return float(value) if column.float_column else Decimal(value)


def _after(column: NumericColumn, descending: bool, value: str | None, last_id: int) -> Q:
    """Rows strictly after (value, id) in the order `descending` gives, NULLs last."""
    f = column.path
    gt, id_gt = ("lt", "lt") if descending else ("gt", "gt")
    if value is None:
        return Q(**{f"{f}__isnull": True, f"id__{id_gt}": last_id})
    v = _prep_position(column, value)
    ge = "lte" if descending else "gte"
    q = Q(**{f"{f}__{ge}": v}) & (Q(**{f"{f}__{gt}": v}) | Q(**{f"id__{id_gt}": last_id}))
    return q | Q(**{f"{f}__isnull": True}) if column.nullable else q


def _before(column: NumericColumn, descending: bool, value: str | None, last_id: int) -> Q:
    """Rows strictly before (value, id) in the order `descending` gives, NULLs last."""
    f = column.path
    lt, id_lt = ("gt", "gt") if descending else ("lt", "lt")
    if value is None:
        return Q(**{f"{f}__isnull": False}) | Q(**{f"{f}__isnull": True, f"id__{id_lt}": last_id})
    v = _prep_position(column, value)
    le = "gte" if descending else "lte"
    return Q(**{f"{f}__{le}": v}) & (Q(**{f"{f}__{lt}": v}) | Q(**{f"id__{id_lt}": last_id}))


def sort_value(offer: Offer, field: str) -> str | None:
    """The value of the sort field on a row, as the text a cursor stores (exact for Decimal and float)."""
    obj: object = offer
    for part in NUMERIC[field].path.split("__"):
        obj = getattr(obj, part)
        if obj is None:
            return None
    return repr(obj) if isinstance(obj, float) else str(obj)


def listed_offers() -> QuerySet[Offer]:
    now = timezone.now()
    return offer_queryset().filter(Q(available_until__isnull=True) | Q(available_until__gt=now),
                                   status=Offer.Status.LISTED)


def offer_search(*, clauses: Sequence[Clause], ordering: str | None = None, position: Position | None = None,
                 limit: int = 50) -> tuple[list[Offer], bool]:
    """One page of listed offers matching every clause, in order. Returns (rows, more_in_that_direction).

    With a backwards position the rows are the page *before* it, still returned in display order.
    """
    name, descending = parse_ordering(ordering)
    column = NUMERIC[name]
    qs = filter_clauses(listed_offers(), clauses)
    backwards = bool(position and position.backwards)
    if position is not None:
        seek = _before if backwards else _after
        qs = qs.filter(seek(column, descending, position.value, position.id))
    order = _reversed_order_by(column, descending) if backwards else _order_by(column, descending)
    rows = list(qs.order_by(*order)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return rows, more


# ------------------------------------------------------------------------------------- other reads
def offers_of_provider(*, user: User, status: str | None = None, provider_slug: str | None = None
                       ) -> QuerySet[Offer]:
    """A provider member's own offers in every status; an operator sees all (or one provider's)."""
    qs = offer_queryset()
    if not user.is_operator:
        qs = qs.filter(provider_id=user.provider_id)
    elif provider_slug:
        qs = qs.filter(provider__slug=provider_slug)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("id")


def offer_visible(*, user: User, offer_id: int) -> Offer | None:
    """A listed offer, or any offer of the user's own provider, or any offer for an operator."""
    visible = Q(status=Offer.Status.LISTED)
    if user.is_operator:
        visible = Q()
    elif user.provider_id is not None:
        visible |= Q(provider_id=user.provider_id)
    return offer_queryset().filter(visible, pk=offer_id).first()
