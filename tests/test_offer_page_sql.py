"""The search's page query (SQL written by marketplace/selectors/offer_page_sql.py) against the ORM.

The oracle below is the ORM form of the same page query (clause_q, the listed condition, the keyset seek, the
ordering, and the page-id subquery when an accelerator is named), which the search ran before its SQL was written
directly. Every field and operator, NULLs on both sides of `!=`/`notin`, ties on the sort value, every sortable
direction and both directions of the keyset must give the same rows, as the same dicts, page by page.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import reduce
from operator import and_

import pytest
from django.db.models import DecimalField, F, FloatField, Q
from django.db.models.expressions import ExpressionWrapper
from django.utils import timezone

from broker.query.language import SORTABLE_FIELDS, parse
from marketplace.models import Accelerator, Offer, Region
from marketplace.selectors.offers import (
    NUMERIC,
    Position,
    _prep_position,
    clause_q,
    offer_queryset,
    offer_search,
    parse_ordering,
    sort_value,
)

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------------------------- the ORM oracle
def _order_by(column, descending: bool, expr=None, reverse: bool = False) -> list:
    expr = expr if expr is not None else F(column.path)
    down = descending != reverse
    tie = F("id").desc() if down else F("id").asc()
    if column.nullable:
        nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
        primary = expr.desc(**nulls) if down else expr.asc(**nulls)
    else:
        primary = expr.desc() if down else expr.asc()
    return [primary, tie]


def _seek(column, descending: bool, position: Position) -> Q:
    f, value, last_id = column.path, position.value, position.id
    if not position.backwards:
        gt = "lt" if descending else "gt"
        if value is None:
            return Q(**{f"{f}__isnull": True, f"id__{gt}": last_id})
        v = _prep_position(column, value)
        ge = "lte" if descending else "gte"
        q = Q(**{f"{f}__{ge}": v}) & (Q(**{f"{f}__{gt}": v}) | Q(**{f"id__{gt}": last_id}))
        return q | Q(**{f"{f}__isnull": True}) if column.nullable else q
    lt = "gt" if descending else "lt"
    if value is None:
        return Q(**{f"{f}__isnull": False}) | Q(**{f"{f}__isnull": True, f"id__{lt}": last_id})
    v = _prep_position(column, value)
    le = "gte" if descending else "lte"
    return Q(**{f"{f}__{le}": v}) & (Q(**{f"{f}__{lt}": v}) | Q(**{f"id__{lt}": last_id}))


def orm_offer_search(*, clauses, ordering, position, limit):
    name, descending = parse_ordering(ordering)
    column = NUMERIC[name]
    backwards = bool(position and position.backwards)
    listed = Q(status="listed") & (Q(available_until__isnull=True) | Q(available_until__gt=timezone.now()))
    conditions = [listed, *(clause_q(c) for c in clauses)]
    if position is not None:
        conditions.append(_seek(column, descending, position))
    where = reduce(and_, conditions)
    if any(c.field == "accelerator" for c in clauses):
        output = FloatField() if column.float_column else DecimalField()
        key = ExpressionWrapper(F(column.path) + 0, output_field=output)
        # (Annotated: the ORM search failed here with a FieldError when the clauses or the ordering used
        # total_memory_gb; the SQL page query has no such hole.)
        ids = (Offer.objects.annotate(total_memory_gb=F("accelerator_count") * F("accelerator_memory_gb"))
               .filter(where).order_by(*_order_by(column, descending, key, backwards))
               .values("pk")[:limit + 1])
        where = Q(pk__in=ids)
    rows = list(offer_queryset().filter(where).order_by(*_order_by(column, descending, reverse=backwards))
                [:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return rows, more


# ------------------------------------------------------------------------------------- the world
@pytest.fixture
def world(make_offer, make_provider):
    """Offers over several accelerators, regions and providers, with NULLs and ties in the sortable columns."""
    rated = make_provider("Rated Cloud")
    rated.reliability_score = Decimal("0.950")
    rated.save()
    unrated = make_provider("Unrated_Cloud")  # '_' must not act as a LIKE wildcard
    accs = [Accelerator.objects.get(canonical_name=n) for n in (
        "NVIDIA H100-SXM5-80GB", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "AMD Instinct MI300X",
        "Huawei Ascend 910B")]
    regions = [Region.objects.get(key=k) for k in ("us-east-virginia", "eu-frankfurt", "us-west-oregon",
                                                  "eu-finland")]
    now = timezone.now()
    for i in range(36):
        make_offer(
            (rated, unrated)[i % 2], name=f"o{i}", accelerator=accs[i % 5], accelerator_count=(1, 2, 4, 8)[i % 4],
            accelerator_memory_gb=(40, 80, 192)[i % 3], vcpus=8 * (i % 5), ram_gb=64.5 * (i % 3),
            price_per_hour=Decimal((3, 7, 7, 12.5, 20, 31.25)[i % 6]).quantize(Decimal("0.0001")),
            interruptible_price_per_hour=None if i % 3 == 0 else Decimal(i % 4 + 1),
            network_gbps=None if i % 4 == 1 else float(25 * (i % 3 + 1)), region=regions[i % 4],
            interconnect=("nvlink", "pcie", "xgmi")[i % 3], nodes_available=i % 3,
            min_rental_hours=Decimal(i % 2),
            status="draft" if i == 5 else "listed",
            available_until=(now - timedelta(hours=1)) if i == 7 else (now + timedelta(days=1)) if i == 8 else None)


QUERIES = [
    "", "accelerator=H100", "accelerator=A100 count>=2", "accelerator!=A100", "accelerator notin [H100,MI300X]",
    "accelerator in [MI300X,h100_sxm] count>=8 price_per_hour<=20", "vendor=amd", "vendor!=nvidia",
    "stack in [cuda,cann]", "stack notin [cuda]", "interconnect=nvlink", "interconnect!=pcie", "inter_node=none",
    "region=us-east", "region in [us-east,eu-*]", "region notin [us-west,eu-finland]", "region=eu-*",
    "country in [DE,FI]", "country!=US", "provider=rated-cloud", "provider=unrated*", "provider notin [rated*]",
    "provider=unrated_*", "count=8", "count!=8", "count in [1,4]", "count notin [1,2]", "count<4", "count>1",
    "memory_gb>=80", "memory_gb!=80", "total_memory_gb>=320 total_memory_gb<1000", "bf16_tflops>=900",
    "fp64_tflops<100", "fp64_tflops!=67", "vcpus<=16", "ram_gb>64", "disk_gb=2000", "network_gbps>=50",
    "network_gbps!=25", "network_gbps notin [25,50]", "network_gbps in [25,75]", "carbon_gco2_per_kwh<400",
    "price_per_hour<=12.5", "price_per_hour!=7", "price_per_hour in [3,31.25]", "price_per_accelerator_hour<3",
    "interruptible_price_per_hour>=2", "interruptible_price_per_hour!=2", "nodes_available>0",
    "min_rental_hours=1", "reliability>=0.9", "reliability!=0.95", "reliability notin [0.95]",
    "accelerator=H100 reliability>=0.5 region=us-east",
]


def _walk(search, clauses, ordering: str, limit: int) -> list[list[dict]]:
    """Every page forwards to the end, then every page backwards from there, with each implementation."""
    field, _ = parse_ordering(ordering)
    pages, position = [], None
    for _ in range(40):
        rows, more = search(clauses=clauses, ordering=ordering, position=position, limit=limit)
        pages.append((rows, more))
        if not rows or not more:
            break
        last = rows[-1]
        position = Position(ordering, sort_value(last, field), last["id"], False)
    if pages[-1][0]:
        first = pages[-1][0][0]
        position = Position(ordering, sort_value(first, field), first["id"], True)
        for _ in range(40):
            rows, more = search(clauses=clauses, ordering=ordering, position=position, limit=limit)
            pages.append((rows, more))
            if not rows or not more:
                break
            position = Position(ordering, sort_value(rows[0], field), rows[0]["id"], True)
    return pages


@pytest.mark.parametrize("query", QUERIES)
def test_page_query_matches_the_orm(world, query):
    clauses = list(parse(query).clauses)
    orderings = ["price_per_hour", "-price_per_hour"]
    if query == "":
        orderings = [*SORTABLE_FIELDS, *(f"-{f}" for f in SORTABLE_FIELDS)]
    elif query in ("accelerator!=A100", "network_gbps!=25", "accelerator=A100 count>=2"):
        orderings += ["network_gbps", "-reliability", "total_memory_gb", "-interruptible_price_per_hour",
                      "price_per_accelerator_hour", "-price_per_accelerator_hour"]
    for ordering in orderings:
        expected = _walk(orm_offer_search, clauses, ordering, limit=7)
        got = _walk(offer_search, clauses, ordering, limit=7)
        assert got == expected, (query, ordering)
    assert expected[0][0] or query in ("provider=unrated_*",), f"{query!r} matches nothing: a weak case"


def test_price_pages_merged_per_count_match_the_orm(make_offer, make_provider):
    """On PostgreSQL a page by price (or per-accelerator price) with a named accelerator merges one index probe per
    (accelerator, count) (`per_count_page_ids`), each probe limited to a page. Here one pair holds the whole cheap
    end, prices tie across pairs, and a pair is unlisted or expired: every page, both keyset directions, must be
    the ORM's."""
    from django.db import connection

    provider = make_provider("Merge Cloud")
    h100, mi300x = (Accelerator.objects.get(canonical_name=n)
                    for n in ("NVIDIA H100-SXM5-80GB", "AMD Instinct MI300X"))
    now = timezone.now()
    for i in range(14):  # H100 x8: the cheapest fourteen, with ties among themselves
        make_offer(provider, accelerator=h100, accelerator_count=8, price_per_hour=Decimal(1 + i // 3))
    for i, count in enumerate((1, 2, 2, 4, 4, 4)):  # dear ones, tying with x8 prices and each other
        make_offer(provider, accelerator=h100, accelerator_count=count, price_per_hour=Decimal(4 + i % 2 * 20))
    for i in range(5):
        make_offer(provider, accelerator=mi300x, accelerator_count=(8, 4)[i % 2], price_per_hour=Decimal(2 + i))
    # Per-accelerator prices tying across pairs (1.0 for x1, x2, x4 and x64), and x64 prices a 4th decimal apart.
    for count, price in ((2, "2"), (1, "1"), (64, "64"), (64, "64.0001"), (64, "64.0002"), (64, "63.9999")):
        make_offer(provider, accelerator=h100, accelerator_count=count, price_per_hour=Decimal(price))
    make_offer(provider, accelerator=h100, accelerator_count=3, price_per_hour=Decimal(1), status="draft")
    make_offer(provider, accelerator=h100, accelerator_count=16, price_per_hour=Decimal(1),
               available_until=now - timedelta(hours=1))
    statements = _price_pages_match_the_orm(["accelerator=H100", "accelerator in [H100,MI300X] count>=2",
                                             "accelerator=H100 price_per_hour<=4",
                                             "accelerator in [MI300X,H100] accelerator!=MI300X"])
    if connection.vendor == "postgresql":  # by price and by per-accelerator price: the per-count probes
        assert any("CROSS JOIN LATERAL" in s and 'AS key' in s and 'price_per_accelerator_hour" AS key' in s
                   for s in statements)
        assert any("CROSS JOIN LATERAL" in s and 's."price_per_hour" AS key' in s for s in statements)
    if connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get("prepare_threshold"):
        with connection.cursor() as cursor:  # and it ran as a prepared statement on this connection
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                           ["%CROSS JOIN LATERAL%"])
            assert cursor.fetchone()[0] >= 1
            # on its generic plan (plan_cache_mode=force_generic_plan): PostgreSQL's own choice kept re-planning it
            cursor.execute("SELECT sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements "
                           "WHERE statement LIKE %s", ["%CROSS JOIN LATERAL%"])
            generic, custom = cursor.fetchone()
            assert generic >= 1 and custom == 0
    if connection.vendor == "postgresql":
        # A probe reads one named accelerator (k.acc): the clause naming them is not restated inside it, where the
        # generic plan turned its `= ANY(...)` into an index condition that lost the index's price order.
        probes = [s.split("CROSS JOIN LATERAL", 1)[1] for s in statements if "CROSS JOIN LATERAL" in s]
        assert probes and not any('AND (s."accelerator_id" IN' in p for p in probes)


def test_price_pages_naming_regions_merge_per_region_probes(world):
    """On PostgreSQL a page by price or per-accelerator price that names regions (and no accelerator) merges one
    probe of the (status, region, price) or (status, region, per-accelerator price) index per named region
    (`per_region_page_ids`); with a negated region clause, other filters and both keyset directions every page
    must still be the ORM's (QUERIES above cover more region forms)."""
    from django.db import connection

    statements = _price_pages_match_the_orm(["region in [us-east,eu-*]", "region in [us-*] vendor=nvidia",
                                             "region=eu-* region notin [eu-finland] count>=2"])
    if connection.vendor == "postgresql":
        probes = [s for s in statements if "AS rid" in s and "CROSS JOIN LATERAL" in s]
        assert probes
        # By per-accelerator price each probe reads in that order (counts differ within a region).
        assert any('ORDER BY s."price_per_accelerator_hour"' in p for p in probes)
        # The clause naming the regions is not restated inside a probe (each probe reads one of them).
        assert not any('AND (s."region_id" IN' in p.split("CROSS JOIN LATERAL", 1)[1] for p in probes)


def test_price_pages_filtered_by_count_merge_per_count_probes(world):
    """On PostgreSQL a page by price or per-accelerator price filtered by accelerator count (no accelerator or
    region named) merges one probe of the (status, count, price) index per admitted count
    (`per_node_count_page_ids`); every count operator, other filters and both keyset directions must give the
    ORM's pages."""
    from django.db import connection

    statements = _price_pages_match_the_orm(["count>=4", "count>=2 interconnect=nvlink", "count in [1,8] vendor!=amd",
                                             "count!=4", "count notin [1,2] count<8", "count=2 price_per_hour<=12.5"])
    if connection.vendor == "postgresql":
        probes = [s for s in statements if "WITH RECURSIVE d(n)" in s and "CROSS JOIN LATERAL" in s]
        assert len(probes) >= 6 * 4 * 2


def _price_pages_match_the_orm(queries: list[str]) -> list[str]:
    """Every page of each query, by price and by per-accelerator price, both directions, pages of 2 and of 5, must
    be the ORM's (and not empty). Returns the SQL that ran."""
    from django.db import connection

    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        for query in queries:
            clauses = list(parse(query).clauses)
            for ordering in ("price_per_hour", "-price_per_hour", "price_per_accelerator_hour",
                             "-price_per_accelerator_hour"):
                for limit in (2, 5):
                    expected = _walk(orm_offer_search, clauses, ordering, limit=limit)
                    assert _walk(offer_search, clauses, ordering, limit=limit) == expected, (query, ordering, limit)
                    assert expected[0][0], query
    return statements
