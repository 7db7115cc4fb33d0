"""The hardware vocabulary resolves every alias in the accelerator data, and explains what it cannot."""

import csv

import pytest

from broker.hardware.vocabulary import Vocabulary, default_vocabulary, normalize


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"),
        ("NVIDIA A100 80GB", "NVIDIA A100-SXM4-80GB"),
        ("a100-80gb", "NVIDIA A100-SXM4-80GB"),
        ("H100_SXM", "NVIDIA H100-SXM5-80GB"),
        ("nvidia-tesla-t4", "NVIDIA T4"),
        ("Ascend910B", "Huawei Ascend 910B"),
        ("h100 pcie", "NVIDIA H100-PCIE-80GB"),
        ("MI300X", "AMD Instinct MI300X"),
        ("深算三号", "Hygon DCU BW1000/BW200 (Shensuan-3)"),
        ("Gaudi3", "Intel Gaudi 3"),
        ("nvidia-h200-141gb", "NVIDIA H200-SXM-141GB"),
    ],
)
def test_known_names_resolve_to_one(query, canonical):
    res = default_vocabulary().resolve(query)
    assert (res.status, res.canonical) == ("exact", canonical)


def test_every_alias_in_the_shared_data_resolves_to_its_row(shared_data):
    vocab = default_vocabulary()
    with open(shared_data / "accelerators.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 44
    checked = 0
    for row in rows:
        for alias in [row["canonical_name"], *[a for a in row["aliases"].split(";") if a.strip()]]:
            res = vocab.resolve(alias)
            assert res.status in ("exact", "ambiguous"), alias
            # An exact answer for an alias shared with another row can only come from an override.
            assert row["canonical_name"] in res.candidates or normalize(alias) in vocab._overrides, alias
            checked += 1
    assert checked > 200


def test_ambiguous_family_lists_candidates():
    res = default_vocabulary().resolve("A100")
    assert res.status == "ambiguous"
    assert res.candidates == (
        "NVIDIA A100-PCIE-40GB", "NVIDIA A100-PCIE-80GB", "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB")
    assert res.canonical is None
    assert "ambiguous" in res.message()


def test_unknown_name_suggests():
    res = default_vocabulary().resolve("H10O")
    assert res.status == "unknown"
    assert res.suggestions[0] == "NVIDIA H100-SXM5-80GB"
    assert res.message() == "unknown accelerator 'H10O'; did you mean NVIDIA H100-SXM5-80GB?"


def test_empty_and_garbage_are_unknown():
    vocab = default_vocabulary()
    assert vocab.resolve("").status == "unknown"
    assert vocab.resolve("!!!").status == "unknown"
    assert vocab.resolve("quantum-banana").suggestions == ()


def test_override_must_name_a_known_accelerator():
    with pytest.raises(ValueError, match="unknown accelerators"):
        Vocabulary(default_vocabulary().specs, {"x": "No Such GPU"})
