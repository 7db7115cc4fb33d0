"""The offer search's page query as SQL text, written directly instead of compiled by the ORM per request.

Building and compiling the page query's Q tree cost the ORM ~2.5 ms of CPU per request, four times the client
side of running it; and the query's shape is fixed: listed offers joined with their provider, accelerator and
region, one condition per query-language clause, a keyset seek, ORDER BY (sort column, id) LIMIT n; when an
accelerator is named, the page's ids come first from a subquery that PostgreSQL answers from the covering
(status, accelerator, count, price) index: ordering it on `column + 0` keeps the planner from walking the price
index instead (prices correlate with the filters: 8x H100 nodes are the dear ones, so that walk would skip most
of the table), and the top-n sort runs over the matching index entries only.

The meaning of each clause is the one of `marketplace.selectors.offers.clause_q`, which the portal's nearest-miss
counts still run through the ORM: a condition on a value the offer does not have (NULL) is false, and its
negation (`!=`, `notin`) true, as with the ORM's exclude(). Parameters are prepared by the model fields as the
ORM's lookups prepare them, and rows come back through the ORM's converters, so a row is the dict `.values()`
gives, on PostgreSQL and on SQLite. tests/test_offer_page_sql.py holds the ORM form of the whole page query as
an oracle and compares the two for every field and operator, every ordering, and both keyset directions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Field, FloatField, GeneratedField

from marketplace.models import Offer

# Aliases of the joined tables; the page-id subquery prefixes them with "s".
RELATIONS = ("provider", "accelerator", "region")
_ALIAS = {"provider": "p", "accelerator": "a", "region": "r"}
_FLOAT = FloatField()


@cache
def _field(path: str) -> Field:
    """The model field behind an ORM path of NUMERIC or ROW_COLUMNS (the total-memory annotation is a float)."""
    if path == "total_memory_gb":
        return _FLOAT
    model, name = Offer, path
    if "__" in path:
        relation, name = path.split("__")
        model = Offer._meta.get_field(relation).related_model
    field = model._meta.get_field(name)
    return field.output_field if isinstance(field, GeneratedField) else field


class PageQuery:
    """Collects the SQL of one page query: parameters in order, and which reference tables the conditions use."""

    def __init__(self, offer_alias: str, relation_prefix: str = "") -> None:
        self.offer = offer_alias
        self.prefix = relation_prefix
        self.params: list[Any] = []
        self.relations: set[str] = set()

    def column(self, path: str) -> str:
        if path == "total_memory_gb":
            return (f'({self.offer}."{_column("accelerator_count")}" * '
                    f'{self.offer}."{_column("accelerator_memory_gb")}")')
        if "__" not in path:
            return f'{self.offer}."{_column(path)}"'
        relation = path.split("__")[0]
        self.relations.add(relation)
        return f'{self.prefix}{_ALIAS[relation]}."{_column(path)}"'

    def param(self, path: str, value: Any) -> str:
        """A placeholder for `value` compared with the column at `path`, prepared as the ORM's lookups do."""
        field = _field(path)
        self.params.append(field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True))
        return "%s"

    def raw_param(self, value: Any) -> str:
        self.params.append(value)
        return "%s"

    def joins(self) -> str:
        parts = []
        for relation in RELATIONS:
            if relation in self.relations:
                alias = self.prefix + _ALIAS[relation]
                table = Offer._meta.get_field(relation).related_model._meta.db_table
                parts.append(f' INNER JOIN "{table}" {alias} ON ({self.offer}."{relation}_id" = {alias}."id")')
        return "".join(parts)


@cache
def _column(path: str) -> str:
    field = Offer._meta.get_field(path) if "__" not in path else None
    if field is not None:
        return field.column
    relation, name = path.split("__")
    return Offer._meta.get_field(relation).related_model._meta.get_field(name).column


def negated(sql: str) -> str:
    # As the ORM's exclude(): true where the condition is false or unknown (NULL).
    return f"NOT COALESCE(({sql}), FALSE)"


def in_sql(q: PageQuery, path: str, values: Sequence[Any]) -> str:
    if not values:
        return "FALSE"  # the ORM's EmptyResultSet: `x IN ()` holds for no row
    column = q.column(path)
    return f"{column} IN ({', '.join(q.param(path, v) for v in values)})"


def numeric_sql(q: PageQuery, path: str, op: str, value: Any) -> str:
    """`value` is already prepared as `_numeric_q` prepares it (int, float or Decimal; a list for in/notin)."""
    if op in ("in", "notin"):
        sql = in_sql(q, path, value)
    else:
        symbol = {"=": "=", "!=": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[op]
        sql = f"{q.column(path)} {symbol} {q.param(path, value)}"
    return negated(sql) if op in ("!=", "notin") else sql


def name_match_sql(q: PageQuery, path: str, values: Sequence[str]) -> str:
    """As `_name_match`: exact, or hyphen-segment prefix; 'x*' is a plain prefix."""
    return _name_match(q, q.column(path), values, lambda value: q.param(path, value))


def _name_match(q: PageQuery, column: str, values: Sequence[str], exact: Callable[[str], str]) -> str:
    """`_name_match` on a column's SQL; `exact(value)` writes the placeholder of an exact match."""
    like = connection.operators["startswith"]
    parts = []
    for value in values:
        if value.endswith("*"):
            parts.append(f"{column} {like % q.raw_param(connection.ops.prep_for_like_query(value[:-1]) + '%')}")
        else:
            parts.append(f"({column} = {exact(value)} OR {column} "
                         f"{like % q.raw_param(connection.ops.prep_for_like_query(value + '-') + '%')})")
    return "(" + " OR ".join(parts) + ")"


def region_match_sql(q: PageQuery, values: Sequence[str]) -> str:
    """As `region=` in clause_q (key or energy zone, each by `_name_match`): the offer's region is one of the
    matching regions (a semi-join on the small regions table). A page by price that names regions is read per
    region instead (`per_region_page_ids`)."""
    return f'{q.column("region")} IN ({region_ids_sql(q, values)})'


def region_ids_sql(q: PageQuery, values: Sequence[str]) -> str:
    """SELECT of the ids of the regions `region=` names (key or energy zone, each by `_name_match`)."""
    table = Offer._meta.get_field("region").related_model._meta.db_table
    matches = [_name_match(q, f'rg."{column}"', values, q.raw_param) for column in ("key", "energy_zone")]
    return f'SELECT rg."id" FROM "{table}" rg WHERE {" OR ".join(matches)}'


def per_count_page_ids(cte: PageQuery, inner: PageQuery, inner_where: str, *, table: str,
                       accelerator_ids: Sequence[int], descending: bool, reverse: bool, limit: int,
                       key: str = "price_per_hour") -> str:
    """The page's ids by price, one index range scan per (accelerator, count) pair, merged (PostgreSQL).

    The (status, accelerator, count, price) index holds each pair's offers in price order, so a page ordered
    by price needs at most `limit` entries from each pair instead of a top-n sort over every matching entry
    (~5,600 for `accelerator=H100 count>=8 price_per_hour<=40` over 100,000 offers: 5.7 ms of execution,
    0.3 ms this way). The pairs come from a recursive skip scan of that index (one descent per count an
    accelerator has); every condition of the query still applies inside each probe, so the pairs only need
    to be a superset of those that match. `cte` collects the skip scan's parameters, which precede the
    probe's (`inner`) in the text; `inner_where` is the probe's condition written with `inner`.

    `key` is the page's order: price_per_hour, or price_per_accelerator_hour, which within one pair is the price
    divided by the pair's count, so each probe still walks the index in price order and the pages merge on the
    per-accelerator price. That holds to the row (ties included): prices have 4 decimals and counts are at most
    64, so two prices of a pair never round to one per-accelerator price (6 decimals) and the ties of one are the
    ties of the other, broken by id alike.
    """
    status = cte.param("status", Offer.Status.LISTED)
    ids = ", ".join(cte.raw_param(int(i)) for i in accelerator_ids)
    status_again = cte.param("status", Offer.Status.LISTED)
    count, acc = (f'"{_column(p)}"' for p in ("accelerator_count", "accelerator_id"))
    pairs = (f"WITH RECURSIVE k(acc, n) AS ("
             f"SELECT a.id, (SELECT min(c.{count}) FROM {table} c WHERE c.\"status\" = {status} "
             f"AND c.{acc} = a.id) FROM unnest(ARRAY[{ids}]::bigint[]) a(id) "
             f"UNION ALL SELECT k.acc, (SELECT min(c.{count}) FROM {table} c WHERE c.\"status\" = {status_again} "
             f"AND c.{acc} = k.acc AND c.{count} > k.n) FROM k WHERE k.n IS NOT NULL) "
             f"SELECT acc, n FROM k WHERE n IS NOT NULL")
    return merged_probes(pairs, f"s.{acc} = k.acc AND s.{count} = k.n", inner, inner_where, table=table, key=key,
                         descending=descending, reverse=reverse, limit=limit)


def per_region_page_ids(regions: PageQuery, inner: PageQuery, inner_where: str, *, table: str,
                        values: Sequence[str], descending: bool, reverse: bool, limit: int,
                        key: str = "price_per_hour") -> str:
    """The page's ids by price (or per-accelerator price), one range scan of the (status, region, price) index (or
    (status, region, per-accelerator price)) per named region, merged (PostgreSQL; as `per_count_page_ids` does per
    accelerator and count). `regions` collects the region subquery's parameters, which precede the probe's
    (`inner`) in the text; `inner_where` must not restate the region clause (each probe reads one of its
    regions). Within a region the node counts differ, so each probe is ordered by `key` itself."""
    pairs = f"SELECT named.id AS rid FROM ({region_ids_sql(regions, values)}) named"
    return merged_probes(pairs, f's."{_column("region")}" = k.rid', inner, inner_where, table=table,
                         key=key, probe_key=key, descending=descending, reverse=reverse, limit=limit)


def per_node_count_page_ids(counts: PageQuery, allowed: Callable[[PageQuery], str], inner: PageQuery,
                            inner_where: str, *, table: str, descending: bool, reverse: bool, limit: int,
                            key: str = "price_per_hour") -> str:
    """The page's ids by price (or per-accelerator price: within one count the same order), one range scan of the
    (status, count, price) index per accelerator count that the count clauses admit (`allowed(counts)` writes them
    on the counts, alias "k"), merged (PostgreSQL). The counts come from a recursive skip scan of that index, one
    descent per distinct count; `counts` collects its parameters, which precede the probe's (`inner`) in the
    text; `inner_where` need not restate the count clauses (each probe reads one admitted count)."""
    count = f'"{_column("accelerator_count")}"'
    status = counts.param("status", Offer.Status.LISTED)
    status_again = counts.param("status", Offer.Status.LISTED)
    distinct = (f"WITH RECURSIVE d(n) AS (SELECT (SELECT min(c.{count}) FROM {table} c WHERE c.\"status\" = {status}) "
                f"UNION ALL SELECT (SELECT min(c.{count}) FROM {table} c WHERE c.\"status\" = {status_again} "
                f"AND c.{count} > d.n) FROM d WHERE d.n IS NOT NULL) SELECT n AS {count} FROM d WHERE n IS NOT NULL")
    pairs = f"SELECT k.{count} FROM ({distinct}) k WHERE {allowed(counts)}"
    return merged_probes(pairs, f"s.{count} = k.{count}", inner, inner_where, table=table, key=key,
                         descending=descending, reverse=reverse, limit=limit)


def merged_probes(pairs: str, match: str, inner: PageQuery, inner_where: str, *, table: str, key: str,
                  descending: bool, reverse: bool, limit: int, probe_key: str = "price_per_hour") -> str:
    """The page's ids: for each row `k` of the `pairs` query, the first limit+1 matching offers `s` in `probe_key`
    order (`match` ties `s` to `k`: one index range scan each; price, whose order within one accelerator count is
    also the per-accelerator price's), merged on the `key` column and cut to limit+1."""
    probe_column = f'"{_column(probe_key)}"'
    probe_order = order_sql(f"s.{probe_column}", nullable=False, descending=descending, reverse=reverse,
                            id_column='s."id"')
    merge_order = order_sql("x.key", nullable=False, descending=descending, reverse=reverse, id_column="x.id")
    probe = (f'SELECT s."id" AS id, s."{_column(key)}" AS key FROM {table} s{inner.joins()} '
             f"WHERE {match} AND {inner_where} ORDER BY {probe_order} LIMIT {int(limit) + 1}")
    return (f"SELECT x.id FROM ({pairs}) k CROSS JOIN LATERAL ({probe}) x "
            f"ORDER BY {merge_order} LIMIT {int(limit) + 1}")


def listed_sql(q: PageQuery, now: datetime) -> str:
    status = f'{q.column("status")} = {q.param("status", Offer.Status.LISTED)}'
    until = q.column("available_until")
    return f"{status} AND ({until} IS NULL OR {until} > {q.param('available_until', now)})"


def order_sql(column: str, *, nullable: bool, descending: bool, reverse: bool, id_column: str) -> str:
    """ORDER BY (column, id) for the display order, or (reverse) its opposite; NULLs last in display order."""
    down = descending != reverse
    direction = "DESC" if down else "ASC"
    nulls = (" NULLS FIRST" if reverse else " NULLS LAST") if nullable else ""
    return f"{column} {direction}{nulls}, {id_column} {direction}"


def seek_sql(q: PageQuery, path: str, *, nullable: bool, descending: bool, backwards: bool,
             value: Decimal | float | None, last_id: int) -> str:
    """Rows strictly after (or, backwards, before) (value, id) in the display order, NULLs last."""
    column, id_column = q.column(path), q.column("id")
    if not backwards:
        gt = "<" if descending else ">"
        if value is None:
            return f"({column} IS NULL AND {id_column} {gt} {q.raw_param(last_id)})"
        ge = "<=" if descending else ">="
        sql = (f"({column} {ge} {q.param(path, value)} AND ({column} {gt} {q.param(path, value)} "
               f"OR {id_column} {gt} {q.raw_param(last_id)}))")
        return f"({sql} OR {column} IS NULL)" if nullable else sql
    lt = ">" if descending else "<"
    if value is None:
        return f"({column} IS NOT NULL OR ({column} IS NULL AND {id_column} {lt} {q.raw_param(last_id)}))"
    le = ">=" if descending else "<="
    return (f"({column} {le} {q.param(path, value)} AND ({column} {lt} {q.param(path, value)} "
            f"OR {id_column} {lt} {q.raw_param(last_id)}))")


def select_list(q: PageQuery, row_columns: tuple[str, ...]) -> str:
    text, relations = _select_list(q.offer, q.prefix, row_columns)
    q.relations.update(relations)
    return text


@cache
def _select_list(offer_alias: str, prefix: str, row_columns: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    """The select list's text and the relations it joins: the same on every request, so built once."""
    q = PageQuery(offer_alias, prefix)
    return ", ".join(f'{q.column(path)} AS "{path}"' for path in row_columns), frozenset(q.relations)

