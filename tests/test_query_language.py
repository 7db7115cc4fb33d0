"""The offer query language: exact clauses for valid queries, exact messages for invalid ones."""

from decimal import Decimal

import pytest

from broker.query import FIELDS, OPERATORS, Clause, QueryError, parse
from broker.query.language import MAX_CLAUSES, SORTABLE_FIELDS, VENDORS, vendor_key

A100S = ("NVIDIA A100-PCIE-40GB", "NVIDIA A100-PCIE-80GB", "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB")
VALID_FIELDS = ("accelerator, vendor, stack, count, memory_gb, total_memory_gb, bf16_tflops, fp64_tflops, "
                "vcpus, ram_gb, disk_gb, interconnect, inter_node, network_gbps, region, country, "
                "carbon_gco2_per_kwh, price_per_hour, price_per_accelerator_hour, interruptible_price_per_hour, "
                "nodes_available, min_rental_hours, provider, reliability")


def test_the_issue_example_parses_to_exact_clauses():
    query = parse("accelerator=H100 count>=8 memory_gb>=80 region in [us-east,eu-north] "
                  "price_per_hour<=30 interconnect=nvlink")
    assert query.clauses == (
        Clause("accelerator", "in", ("NVIDIA H100-SXM5-80GB",)),
        Clause("count", ">=", Decimal(8)),
        Clause("memory_gb", ">=", Decimal(80)),
        Clause("region", "in", ("us-east", "eu-north")),
        Clause("price_per_hour", "<=", Decimal(30)),
        Clause("interconnect", "in", ("nvlink",)),
    )
    assert query.notes == ()


@pytest.mark.parametrize(("text", "clauses"), [
    ("", ()),
    ("   ", ()),
    ("count >= 8", (Clause("count", ">=", Decimal(8)),)),
    ("count==4", (Clause("count", "=", Decimal(4)),)),
    ("count!=4", (Clause("count", "!=", Decimal(4)),)),
    ("count in [1, 2,4]", (Clause("count", "in", (Decimal(1), Decimal(2), Decimal(4))),)),
    ("count notin [8]", (Clause("count", "notin", (Decimal(8),)),)),
    ("price_per_hour<2.5 price_per_hour>.5",
     (Clause("price_per_hour", "<", Decimal("2.5")), Clause("price_per_hour", ">", Decimal(".5")))),
    ("memory_gb>=1e2", (Clause("memory_gb", ">=", Decimal("1e2")),)),
    ("reliability>=0.99", (Clause("reliability", ">=", Decimal("0.99")),)),
    ('accelerator="A100 80GB"', (Clause("accelerator", "in", ("NVIDIA A100-SXM4-80GB",)),)),
    ("accelerator!=MI300X", (Clause("accelerator", "notin", ("AMD Instinct MI300X",)),)),
    ("accelerator in [h100,MI300X,h100_sxm]",
     (Clause("accelerator", "in", ("NVIDIA H100-SXM5-80GB", "AMD Instinct MI300X")),)),
    ("vendor=NVIDIA stack notin [rocm,cann]",
     (Clause("vendor", "in", ("nvidia",)), Clause("stack", "notin", ("rocm", "cann")))),
    ("interconnect IN [NVLink,xgmi]", (Clause("interconnect", "in", ("nvlink", "xgmi")),)),
    ("inter_node=infiniband", (Clause("inter_node", "in", ("infiniband",)),)),
    ("region=cn-* country=de", (Clause("region", "in", ("cn-*",)), Clause("country", "in", ("DE",)))),
    ("provider=lambda*", (Clause("provider", "in", ("lambda*",)),)),
    ("region=lambda/us-east-1", (Clause("region", "in", ("lambda/us-east-1",)),)),
    ("count>=8 count<=8", (Clause("count", ">=", Decimal(8)), Clause("count", "<=", Decimal(8)))),
    ("count>=0", (Clause("count", ">=", Decimal(0)),)),
    ("count<=64", (Clause("count", "<=", Decimal(64)),)),
])
def test_valid_queries(text, clauses):
    assert parse(text).clauses == clauses


def test_ambiguous_accelerator_means_any_of_and_says_so():
    query = parse("accelerator=A100")
    assert query.clauses == (Clause("accelerator", "in", A100S),)
    assert query.notes == (f"accelerator 'A100' is ambiguous; matching any of {', '.join(A100S)}",)
    excluded = parse("accelerator!=A100")
    assert excluded.clauses == (Clause("accelerator", "notin", A100S),)
    assert excluded.notes == (f"accelerator 'A100' is ambiguous; excluding any of {', '.join(A100S)}",)


def test_limits_allow_exactly_the_maximum():
    assert len(parse(" ".join(["count>=1"] * MAX_CLAUSES)).clauses) == MAX_CLAUSES
    assert parse("x" * 0 + "count>=1" + " " * 992).clauses == (Clause("count", ">=", Decimal(1)),)


INVALID = [
    ("gpu_ram>=24", 0, f"unknown field 'gpu_ram' (did you mean 'memory_gb'?); valid fields: {VALID_FIELDS}"),
    ("num_gpus>=8", 0, f"unknown field 'num_gpus' (did you mean 'count'?); valid fields: {VALID_FIELDS}"),
    ("count>=8 prcie_per_hour<3", 9,
     f"unknown field 'prcie_per_hour' (did you mean 'price_per_hour'?); valid fields: {VALID_FIELDS}"),
    ("colour=red", 0, f"unknown field 'colour'; valid fields: {VALID_FIELDS}"),
    ("count~8", 5, "operator '~' is not valid; use one of = != < <= > >= in notin"),
    ("count=>8", 5, "operator '=>' is not valid; use one of = != < <= > >= in notin"),
    ("count<>8", 5, "operator '<>' is not valid; use one of = != < <= > >= in notin"),
    ("count 8", 0, "clause 'count' has no operator; write field op value, e.g. count>=8"),
    ("count", 0, "clause 'count' has no operator; write field op value, e.g. count>=8"),
    ("count>=", 0, "clause 'count>=' has no value"),
    ("count>=lots", 0, "count>=lots: 'lots' is not a number"),
    ("memory_gb>=lots", 0, "memory_gb>=lots: 'lots' is not a number"),
    ("price_per_hour<=nan", 0, "price_per_hour<=nan: 'nan' is not a number"),
    ("count>=8.5", 0, "count>=8.5: '8.5' is not a whole number"),
    ("count>=10000", 0, "count>=10000: count cannot be more than 64"),
    ("price_per_hour<=-1", 0, "price_per_hour<=-1: price_per_hour cannot be less than 0"),
    ("price_per_hour<=200000", 0, "price_per_hour<=200000: price_per_hour cannot be more than 100000"),
    ("reliability>=1.5", 0, "reliability>=1.5: reliability cannot be more than 1"),
    ("region<3", 6, "'<' does not apply to text field 'region'; use = != in notin"),
    ("interconnect>=nvlink", 12, "'>=' does not apply to choice field 'interconnect'; use = != in notin"),
    ("accelerator>H100", 11, "'>' does not apply to accelerator field 'accelerator'; use = != in notin"),
    ("interconnect=infinityband", 0,
     "interconnect=infinityband: 'infinityband' is not one of nvlink, xgmi, hccs, pcie, none"),
    ("stack=cuda12", 0, "stack=cuda12: 'cuda12' is not one of cuda, rocm, cann, dtk, neuware, gaudi, xpu"),
    ("vendor=nvdia", 0, "vendor=nvdia: 'nvdia' is not one of nvidia, amd, intel, huawei, hygon, cambricon, "
                        "kunlunxin"),
    ("accelerator=gpu9000", 0, "accelerator=gpu9000: unknown accelerator 'gpu9000'"),
    ('accelerator="Ascend 910"', 0, "accelerator=\"Ascend 910\": unknown accelerator 'Ascend 910'; "
                                    "did you mean Huawei Ascend 910C, Huawei Ascend 910B?"),
    ("accelerator in [H100,H10]", 0, "accelerator in [H100,H10]: unknown accelerator 'H10'; did you mean "
                                     "NVIDIA H100-SXM5-80GB, NVIDIA H20 (96GB), NVIDIA A10?"),
    ("country=usa", 0, "country=usa: 'usa' is not a two-letter ISO country code such as US or DE"),
    ("region=us*east", 0, "region=us*east: 'us*east' is not a valid region key (letters, digits, - _ . : /, "
                          "and an optional trailing '*')"),
    ("count=[1,2]", 0, "count=[1,2]: '=' takes one value; use 'in' for a list"),
    ("region in us-east", 0, "region in us-east: 'in' takes a list, e.g. region in [a,b]"),
    ("region in []", 0, "region in []: the list is empty"),
    ("region in [a,,b]", 10, "empty item in the list starting at position 10"),
    ("region in [us-east", 10, "unterminated list starting at position 10; close it with ']'"),
    ("region in [a,[b]]", 13, "lists cannot be nested (position 13)"),
    ('accelerator="H100', 12, "unterminated quoted string starting at position 12"),
    ("=8", 0, "expected a field name at position 0, found '='"),
    ("count>=8 ]", 9, "unexpected ']' at position 9"),
    ('"count">=8', 0, "expected a field name at position 0, found '\"count\"'"),
    ("count>=8 9", 9, "expected a field name at position 9, found '9'"),
    (" ".join(["count>=1"] * (MAX_CLAUSES + 1)), 270, "query has more than 30 clauses; the limit is 30"),
    ("count>=1" + " " * 993, None, "query is 1001 characters long; the limit is 1000"),
    ("region in [" + ",".join(["a"] * 51) + "]", 0,
     "region in [...]: the list has 51 items; the limit is 50"),
]


@pytest.mark.parametrize(("text", "position", "message"), INVALID, ids=[t[:30] for t, _, _ in INVALID])
def test_invalid_queries_have_exact_messages(text, position, message):
    with pytest.raises(QueryError) as info:
        parse(text)
    assert info.value.message == message
    assert str(info.value) == message
    assert info.value.position == position


def test_at_least_twenty_invalid_cases():
    assert len(INVALID) >= 20


def test_errors_name_the_field():
    with pytest.raises(QueryError) as info:
        parse("count>=8 memory_gb>=lots")
    assert (info.value.field, info.value.position) == ("memory_gb", 9)


def test_every_operator_is_listed_and_sortable_fields_are_the_numeric_ones():
    assert OPERATORS == ("=", "!=", "<", "<=", ">", ">=", "in", "notin")
    assert set(SORTABLE_FIELDS) == {n for n, f in FIELDS.items() if f.kind in ("number", "integer")}
    assert "price_per_hour" in SORTABLE_FIELDS and "region" not in SORTABLE_FIELDS


def test_vendor_choices_cover_every_catalog_vendor():
    from broker.hardware.vocabulary import default_vocabulary

    assert {vendor_key(s.vendor) for s in default_vocabulary().specs} == set(VENDORS)


def test_parser_does_not_import_django():
    import ast
    from pathlib import Path

    import broker.query

    imported = set()
    for path in Path(broker.query.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
    assert not {m for m in imported if m.split(".")[0] in ("django", "rest_framework", "marketplace")}
    assert "broker.hardware.vocabulary" in imported
