"""Reads of offers: the listed-offer search (query-language clauses -> one SQL query), a provider's offers.

The search is one indexed query per page: clauses on the accelerator, region and provider are conditions on
the joined reference rows, from which the planner drives the (status, accelerator, count, price) and
(status, region, price) indexes; ordering is keyset (seek) pagination on (sort field, id), so no page costs an
OFFSET scan or a COUNT(*).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from operator import and_, or_

from django.db import connection
from django.db.models import F, FloatField, Q, QuerySet
from django.db.models.expressions import ExpressionWrapper
from django.utils import timezone

from broker.hardware.vocabulary import default_vocabulary
from broker.query.language import FIELDS, INTEGER, SORTABLE_FIELDS, Clause, vendor_key
from marketplace.db_prepared import prepared_cursor
from marketplace.models import Accelerator, Offer, User
from marketplace.selectors import offer_page_sql as sql

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

# The columns a result row shows, read as plain dicts (`.values()`): no model instances on the hot path.
ROW_COLUMNS = (
    "id", "name", "external_id", "accelerator_count", "accelerator_memory_gb", "vcpus", "ram_gb", "disk_gb",
    "interconnect", "inter_node", "network_gbps", "price_per_hour", "price_per_accelerator_hour",
    "interruptible_price_per_hour", "nodes_available", "min_rental_hours", "available_until", "status",
    "source", "upstream_cloud",
    "provider__slug", "provider__name", "provider__reliability_score", "provider__verification_status",
    "accelerator__canonical_name", "accelerator__vendor", "accelerator__stack_family",
    "accelerator__bf16_tflops", "accelerator__fp64_tflops",
    "region__key", "region__country", "region__grid_ci_gco2_per_kwh", "total_memory_gb",
)
Row = dict


def _total_memory() -> ExpressionWrapper:
    return ExpressionWrapper(F("accelerator_count") * F("accelerator_memory_gb"), output_field=FloatField())


def offer_queryset() -> QuerySet[Offer]:
    """Offers as result rows (dicts of ROW_COLUMNS): provider, accelerator and region joined in one query."""
    return Offer.objects.annotate(total_memory_gb=_total_memory()).values(*ROW_COLUMNS)


# ---------------------------------------------------------------------------------------- clauses -> Q
def _prep(column: NumericColumn, v: Decimal) -> Decimal | float | int:
    if column.float_column:
        return float(v)
    return int(v) if v == v.to_integral_value() and column.path in _INTEGER_PATHS else v


def _numeric_q(column: NumericColumn, op: str, value: Decimal | tuple) -> Q:
    if op in ("in", "notin"):
        q = Q(**{f"{column.path}__in": [_prep(column, v) for v in value]})
    else:
        lookup = {"=": "exact", "!=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
        q = Q(**{f"{column.path}__{lookup}": _prep(column, value)})
    return ~q if op in ("!=", "notin") else q


_INTEGER_PATHS = {NUMERIC[name].path for name, spec in FIELDS.items() if spec.kind == INTEGER}


_ACCELERATOR_IDS: dict[str, int] = {}


def accelerator_ids(names: Iterable[str]) -> list[int]:
    """Ids of canonical accelerator names; the small reference table is read once per process."""
    names = list(names)
    if any(n not in _ACCELERATOR_IDS for n in names):
        _ACCELERATOR_IDS.clear()
        _ACCELERATOR_IDS.update(Accelerator.objects.values_list("canonical_name", "id"))
    return sorted(_ACCELERATOR_IDS[n] for n in names if n in _ACCELERATOR_IDS)


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
    # Conditions on the joined reference tables (already joined for the row's columns): PostgreSQL plans
    # these in well under a millisecond and drives the offer indexes from the few matching reference rows,
    # where `fk IN (SELECT ...)` semi-joins cost several milliseconds of planning per query.
    if field == "accelerator":
        # By id, not by the joined name, so the planner can drive the (status, accelerator, count, price) index.
        return Q(accelerator_id__in=accelerator_ids(values))
    if field == "vendor":
        return Q(accelerator__vendor__in=_vendor_names(values))
    if field == "stack":
        return Q(accelerator__stack_family__in=values)
    if field in ("interconnect", "inter_node"):
        return Q(**{f"{field}__in": values})
    if field == "country":
        return Q(region__country__in=values)
    if field == "region":
        return _name_match("region__key", values) | _name_match("region__energy_zone", values)
    if field == "provider":
        return _name_match("provider__slug", values)
    raise ValueError(f"no column for query field {field!r}")  # the field table and this function disagree


def clause_q(clause: Clause) -> Q:
    if clause.field in NUMERIC:
        return _numeric_q(NUMERIC[clause.field], clause.op, clause.value)
    q = _text_q(clause.field, clause.value)
    return ~q if clause.op == "notin" else q


def clause_sql(q: sql.PageQuery, clause: Clause) -> str:
    """`clause_q` as SQL text for the search's page query (marketplace/selectors/offer_page_sql.py)."""
    if clause.field in NUMERIC:
        column = NUMERIC[clause.field]
        value = ([_prep(column, v) for v in clause.value] if clause.op in ("in", "notin")
                 else _prep(column, clause.value))
        return sql.numeric_sql(q, column.path, clause.op, value)
    field, values = clause.field, clause.value
    if field == "accelerator":
        text = sql.in_sql(q, "accelerator_id", accelerator_ids(values))
    elif field == "vendor":
        text = sql.in_sql(q, "accelerator__vendor", _vendor_names(values))
    elif field == "stack":
        text = sql.in_sql(q, "accelerator__stack_family", values)
    elif field in ("interconnect", "inter_node"):
        text = sql.in_sql(q, field, values)
    elif field == "country":
        text = sql.in_sql(q, "region__country", values)
    elif field == "region":
        text = sql.region_match_sql(q, values)
    elif field == "provider":
        text = sql.name_match_sql(q, "provider__slug", values)
    else:
        raise ValueError(f"no column for query field {field!r}")
    return sql.negated(text) if clause.op == "notin" else text


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


def _prep_position(column: NumericColumn, value: str) -> Decimal | float:
    return float(value) if column.float_column else Decimal(value)


def sort_value(row: Row, field: str) -> str | None:
    """The value of the sort field on a row, as the text a cursor stores (exact for Decimal and float)."""
    value = row[NUMERIC[field].path]
    if value is None:
        return None
    return repr(value) if isinstance(value, float) else str(value)


def _listed() -> Q:
    return Q(status=Offer.Status.LISTED) & (Q(available_until__isnull=True) | Q(available_until__gt=timezone.now()))


def listed_offers() -> QuerySet[Offer]:
    return offer_queryset().filter(_listed())


# Orders the per-(accelerator, count) index probes can serve (offer_page_sql.per_count_page_ids).
PER_COUNT_KEYS = ("price_per_hour", "price_per_accelerator_hour")


def offer_search(*, clauses: Sequence[Clause], ordering: str | None = None, position: Position | None = None,
                 limit: int = 50) -> tuple[list[Row], bool]:
    """One page of listed offers matching every clause, in order. Returns (rows, more_in_that_direction).

    With a backwards position the rows are the page *before* it, still returned in display order. One query,
    written as SQL (marketplace/selectors/offer_page_sql.py, `clause_sql` for the clauses) rather than compiled
    by the ORM on every request.
    """
    name, descending = parse_ordering(ordering)
    column = NUMERIC[name]
    backwards = bool(position and position.backwards)
    now = timezone.now()

    def where(q: sql.PageQuery, *implied: Clause) -> str:
        kept = [c for c in clauses if not any(c is i for i in implied)]
        conditions = [sql.listed_sql(q, now), *(clause_sql(q, c) for c in kept)]
        if position is not None:
            value = None if position.value is None else _prep_position(column, position.value)
            conditions.append(sql.seek_sql(q, column.path, nullable=column.nullable, descending=descending,
                                           backwards=backwards, value=value, last_id=position.id))
        return " AND ".join(f"({c})" for c in conditions)

    outer = sql.PageQuery("o")
    select = sql.select_list(outer, ROW_COLUMNS)
    table = f'"{Offer._meta.db_table}"'
    named = [c for c in clauses if c.field == "accelerator" and c.op == "in"]
    probe_ids = accelerator_ids(named[0].value) if named else []
    named_regions = [c for c in clauses if c.field == "region" and c.op == "in"]
    count_clauses = [c for c in clauses if c.field == "count"]
    probes = connection.vendor == "postgresql" and column.path in PER_COUNT_KEYS
    # The page's ids come from a subquery (its PageQuerys' parameters precede the outer ones), or none.
    page_ids, page_queries = None, []
    if probes and probe_ids:
        cte, inner = sql.PageQuery("c"), sql.PageQuery("s", relation_prefix="s")
        # Each probe reads one named accelerator (k.acc), so the clause naming them is implied there; left in,
        # PostgreSQL's generic plan makes its `= ANY(...)` an index condition, which loses the index's price
        # order: every probe then reads and sorts all its entries (A100 count>=1: 2,000 per probe, 11 ms).
        page_ids = sql.per_count_page_ids(cte, inner, where(inner, named[0]), table=table,
                                          accelerator_ids=probe_ids,
                                          descending=descending, reverse=backwards, limit=limit,
                                          key=column.path)
        page_queries = [cte, inner]
    elif probes and count_clauses and not named_regions:
        # As above with every accelerator, per accelerator count on the (status, count, price) index: the counts
        # the count clauses allow (read by a skip scan of that index), one probe each. Walking every listed offer
        # in price order read ~30,000 offers for `count>=8 interconnect=nvlink`.
        counts, inner = sql.PageQuery("k"), sql.PageQuery("s", relation_prefix="s")

        def allowed(q: sql.PageQuery) -> str:
            return " AND ".join(f"({clause_sql(q, c)})" for c in count_clauses)

        page_ids = sql.per_node_count_page_ids(counts, allowed, inner, where(inner, *count_clauses), table=table,
                                               descending=descending, reverse=backwards, limit=limit,
                                               key=column.path)
        page_queries = [counts, inner]
    elif probes and named_regions:
        # As above, per named region on the (status, region, price) or (status, region, per-accelerator price)
        # index: walking every listed offer in that order and testing its region read 21,000 offers for
        # `memory_gb>=80 region in [us-east,eu-north]` (22 ms by per-accelerator price).
        regions, inner = sql.PageQuery("rg"), sql.PageQuery("s", relation_prefix="s")
        page_ids = sql.per_region_page_ids(regions, inner, where(inner, named_regions[0]), table=table,
                                           values=named_regions[0].value, descending=descending,
                                           reverse=backwards, limit=limit, key=column.path)
        page_queries = [regions, inner]
    elif any(c.field == "accelerator" for c in clauses):
        inner = sql.PageQuery("s", relation_prefix="s")
        inner_where = where(inner)
        key = f"({inner.column(column.path)} + 0)"
        inner_order = sql.order_sql(key, nullable=column.nullable, descending=descending, reverse=backwards,
                                    id_column=inner.column("id"))
        page_ids = (f"SELECT {inner.column('id')} FROM {table} s{inner.joins()} WHERE {inner_where} "
                    f"ORDER BY {inner_order} LIMIT {int(limit) + 1}")
        page_queries = [inner]
    if page_ids is None:
        outer_where = where(outer)
    else:
        outer_where = f"{outer.column('id')} IN ({page_ids})"
        for q in page_queries:
            outer.params.extend(q.params)
    order = sql.order_sql(outer.column(column.path), nullable=column.nullable, descending=descending,
                          reverse=backwards, id_column=outer.column("id"))
    outer.relations.update(sql.RELATIONS)  # every row shows its provider, accelerator and region
    query = (f"SELECT {select} FROM {table} o{outer.joins()} WHERE {outer_where} "
             f"ORDER BY {order} LIMIT {int(limit) + 1}")
    with prepared_cursor() as cursor:
        cursor.execute(query, outer.params)
        rows = _as_rows(cursor.fetchall())
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return rows, more


_ROW_CONVERTERS: dict[str, list[tuple[int, list, object]]] = {}


def _as_rows(values: list[tuple]) -> list[Row]:
    """Result tuples as the dicts `offer_queryset()` gives, through the ORM's converters for this database."""
    converters = _ROW_CONVERTERS.get(connection.vendor)
    if converters is None:
        compiler = offer_queryset().query.get_compiler(connection=connection)
        compiler.setup_query()
        if [alias for *_, alias in compiler.select] != list(ROW_COLUMNS):
            raise AssertionError("offer_queryset() selects other columns than ROW_COLUMNS")
        found = compiler.get_converters([expression for expression, *_ in compiler.select])
        converters = _ROW_CONVERTERS[connection.vendor] = [
            (position, funcs, expression) for position, (funcs, expression) in found.items()]
    rows = []
    for value in values:
        if converters:
            value = list(value)
            for position, funcs, expression in converters:
                for func in funcs:
                    value[position] = func(value[position], expression, connection)
        rows.append(dict(zip(ROW_COLUMNS, value, strict=True)))
    return rows


# ------------------------------------------------------------------------------------- other reads
def offers_of_provider(*, user: User, status: str | None = None, provider_slug: str | None = None
                       ) -> QuerySet:
    """A provider member's own offers in every status; an operator sees all (or one provider's)."""
    qs = offer_queryset()
    if not user.is_operator:
        qs = qs.filter(provider_id=user.provider_id)
    elif provider_slug:
        qs = qs.filter(provider__slug=provider_slug)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("id")


def offer_visible(*, user: User, offer_id: int) -> Row | None:
    """A listed offer, or any offer of the user's own provider, or any offer for an operator."""
    visible = Q(status=Offer.Status.LISTED)
    if user.is_operator:
        visible = Q()
    elif user.provider_id is not None:
        visible |= Q(provider_id=user.provider_id)
    return offer_queryset().filter(visible, pk=offer_id).first()
