"""Pure tests of the SkyPilot catalog reader (no database)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from broker.catalogs.model import CatalogError
from broker.catalogs.skypilot import external_id, gpu_memory_gb, parse_gpu_info, read_catalog, read_cloud
from broker.catalogs.skypilot_names import canonical_accelerator, interconnect_for
from broker.hardware.vocabulary import default_vocabulary

LAMBDA_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice"
H100_INFO = "\"{'Gpus': [{'Name': 'H100', 'Manufacturer': 'NVIDIA', 'Count': 8.0, 'MemoryInfo': {'SizeInMiB': 81920}}], 'TotalGpuMemoryInMiB': 81920}\""  # noqa: E501


def write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


def test_gpu_info_python_literal_with_json_null() -> None:
    info = parse_gpu_info(
        "{'Gpus': [{'Name': 'L40', 'Manufacturer': null, 'Count': 1, "
        "'MemoryInfo': {'SizeInMiB': 49152}}], 'TotalGpuMemoryInMiB': 49152}"
    )
    assert info == {
        "Gpus": [{"Name": "L40", "Manufacturer": None, "Count": 1, "MemoryInfo": {"SizeInMiB": 49152}}],
        "TotalGpuMemoryInMiB": 49152,
    }


def test_gpu_info_json_and_per_node_memory() -> None:
    info = parse_gpu_info(
        '{"Gpus":[{"Name":"A100-80GB","Count":8,"MemoryInfo":{"SizeInMiB":655360}}],'
        '"TotalGpuMemoryInMiB":5242880}'
    )
    assert gpu_memory_gb(info, 8, per_node=True) == 80.0
    assert gpu_memory_gb(info, 8, per_node=False) == 640.0
    assert parse_gpu_info("") is None
    assert gpu_memory_gb({"Gpus": [{"MemoryInfo": {"SizeInMiB": 0}}]}, 1, per_node=False) is None


def test_gpu_info_rejects_code() -> None:
    with pytest.raises(ValueError):
        parse_gpu_info("__import__('os').system('true')")


@pytest.mark.parametrize(
    ("name", "memory", "count", "hints", "expected"),
    [
        ("A100", 40.0, 1, "gpu_1x_a100", "NVIDIA A100-PCIE-40GB"),
        ("A100", 40.0, 1, "gpu_1x_a100_sxm4", "NVIDIA A100-SXM4-40GB"),
        ("A100", 40.0, 8, "gpu_8x_a100", "NVIDIA A100-SXM4-40GB"),
        ("A100", 40.0, 8, "datacrunch__8xa100_40gb 8a100.40s.176v", "NVIDIA A100-SXM4-40GB"),
        ("A100", 80.0, 2, "ecs2gpu3", "NVIDIA A100-SXM4-80GB"),
        ("A100-80GB", 80.0, 1, "oblivus__1xa100_80gb a100_pcie_80gb", "NVIDIA A100-PCIE-80GB"),
        ("A100-80GB", 80.0, 8, "gpu_8x_a100_80gb_sxm4", "NVIDIA A100-SXM4-80GB"),
        ("A100-80G-PCIe", 80.0, 1, "n3-A100x1", "NVIDIA A100-PCIE-80GB"),
        ("H100", 80.0, 1, "gpu_1x_h100_pcie", "NVIDIA H100-PCIE-80GB"),
        ("H100", 80.0, 8, "gpu_8x_h100_sxm5", "NVIDIA H100-SXM5-80GB"),
        ("H100", 79.65, 2, "2x-H100-149-1443 NVIDIA-H100-80GB-HBM3", "NVIDIA H100-SXM5-80GB"),
        ("H100-80G-SXM5", 80.0, 8, "n3-H100-SXM5x8", "NVIDIA H100-SXM5-80GB"),
        ("V100", 16.0, 8, "gpu_8x_v100", "NVIDIA V100-SXM2-16GB"),
        ("V100", 32.0, 1, "x", "NVIDIA V100-SXM2-32GB"),
        ("A6000", 48.0, 1, "", "NVIDIA RTX A6000"),
        ("RTXA6000", 47.25, 1, "", "NVIDIA RTX A6000"),
        ("RTX-A6000", 48.0, 1, "", "NVIDIA RTX A6000"),
        ("RTX6000Ada", 48.0, 1, "", "NVIDIA RTX 6000 Ada Generation"),
        ("H200", 141.0, 8, "", "NVIDIA H200-SXM-141GB"),
        ("L40S", 48.0, 1, "", "NVIDIA L40S"),
        ("RTX6000", 24.0, 1, "gpu_1x_rtx6000", None),
        ("L40", 48.0, 1, "", None),
        ("A30", 24.0, 1, "", None),
        ("A4000", 16.0, 1, "", None),
        ("RTX-A4000", 16.0, 1, "", None),
        ("RTXPRO6000", 96.0, 1, "", None),
        ("RTX PRO 6000 96GB", None, 1, "", None),
    ],
)
def test_canonical_accelerator(name, memory, count, hints, expected) -> None:
    assert canonical_accelerator(name, memory, count, hints) == expected


def test_hyperstack_parts_default_to_pcie() -> None:
    assert (
        canonical_accelerator("A100-80GB", 80.0, 1, "hyperstack__1xa100_80gb n3-a100x1", pcie_by_default=True)
        == "NVIDIA A100-PCIE-80GB"
    )
    assert (
        canonical_accelerator("H100", 80.0, 8, "n3-h100-sxm5x8", pcie_by_default=True)
        == "NVIDIA H100-SXM5-80GB"
    )


def test_interconnect() -> None:
    vocab = default_vocabulary()
    assert interconnect_for(vocab.by_name["NVIDIA H100-SXM5-80GB"], "") == "nvlink"
    assert interconnect_for(vocab.by_name["NVIDIA A100-PCIE-80GB"], "n3-A100x8-NVLink") == "nvlink"
    assert interconnect_for(vocab.by_name["NVIDIA A100-PCIE-80GB"], "n3-A100x8") == "pcie"
    assert interconnect_for(vocab.by_name["NVIDIA L40S"], "") == "pcie"


def test_reads_by_header_with_crlf(tmp_path: Path) -> None:
    # Same facts, columns in another order, CRLF line endings.
    path = write(
        tmp_path / "x" / "vms.csv",
        [
            "Region,GpuInfo,Price,InstanceType,SpotPrice,AcceleratorCount,AcceleratorName,MemoryGiB,vCPUs",
            f"us-east-1,{H100_INFO},31.92,gpu_8x_h100_sxm5,12.5,8.0,H100,1800.0,208.0",
        ],
        newline="\r\n",
    )
    offers, report = read_cloud(path, "lambda")
    (offer,) = offers
    assert offer.external_id == "gpu_8x_h100_sxm5@us-east-1"
    assert (offer.accelerator, offer.count, offer.memory_gb, offer.vcpus, offer.ram_gb) == (
        "NVIDIA H100-SXM5-80GB",
        8,
        80.0,
        208,
        1800.0,
    )
    assert (offer.price, offer.interruptible_price) == (Decimal("31.92"), Decimal("12.5"))
    assert (offer.region_key, offer.interconnect, offer.upstream_cloud) == ("lambda/us-east-1", "nvlink", "")
    assert (report.rows_read, report.rows_with_accelerator, report.offers) == (1, 1, 1)


def test_skip_reasons_and_unknown_counts(tmp_path: Path) -> None:
    info = H100_INFO
    path = write(
        tmp_path / "lambda" / "vms.csv",
        [
            LAMBDA_HEADER,
            "cpu_4x_generalx,,,4.0,16.0,0.2,us-east-1,,",
            "cpu_zero,,0,4,16,0.2,us-east-1,,",
            f"gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,31.92,,{info},",
            "gpu_1x_rtx6000,RTX6000,1.0,14.0,46.0,0.5,us-east-1,,",
            "gpu_1x_rtx6000,RTX6000,1.0,14.0,46.0,0.5,us-west-1,,",
            f"gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,,us-east-1,{info},",
            f"gpu_99x,H100,99,208.0,1800.0,1,us-east-1,{info},",
            f"gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,31.92,us-west-1,{info},",
            f"gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,30.00,us-west-1,{info},",
            f"gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,31.92,mars-1,{info},",
        ],
    )
    offers, report = read_cloud(path, "lambda")
    assert report.rows_read == 10
    assert report.rows_with_accelerator == 8
    assert dict(report.skipped) == {
        "count_out_of_range": 1,
        "cpu_only": 2,
        "duplicate": 1,
        "no_price": 1,
        "no_region": 1,
        "unknown_accelerator": 2,
    }
    assert dict(report.unknown_accelerators) == {"RTX6000": 2}
    assert [o.external_id for o in offers] == ["gpu_8x_h100_sxm5@us-west-1", "gpu_8x_h100_sxm5@mars-1"]
    assert offers[0].price == Decimal("31.92")  # the first of two duplicate rows wins
    assert offers[1].region_key == "lambda/mars-1"
    assert report.unmapped_regions == ("mars-1",)


def test_primeintellect_spot_rows_merge_into_twin(tmp_path: Path) -> None:
    header = (
        "InstanceType,UpstreamCloudId,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,"
        "AvailabilityZone,Price,SpotPrice"
    )
    info = (
        '"{""Gpus"":[{""Name"":""V100"",""Count"":2,""MemoryInfo"":{""SizeInMiB"":32768}}],'
        '""TotalGpuMemoryInMiB"":65536}"'
    )
    path = write(
        tmp_path / "primeintellect" / "vms.csv",
        [
            header,
            f"datacrunch__2xV100_16GB__10__45,2V100.10V,10.0,45,V100,2.0,{info},FI,FIN-01,0.28,",
            f"datacrunch__2xV100_16GB__10__45__SPOT,2V100.10V_SPOT,10.0,45,V100,2.0,{info},FI,FIN-01,,0.1",
            f"datacrunch__2xV100_16GB__10__45__SPOT,2V100.10V_SPOT,10.0,45,V100,2.0,{info},FI,FIN-02,,0.1",
            "datacrunch__CPU_NODE__8__32__SPOT,,8.0,32,,,,FI,FIN-01,,0.02",
        ],
    )
    offers, report = read_cloud(path, "primeintellect")
    (offer,) = offers
    assert offer.external_id == "datacrunch__2xV100_16GB__10__45@FI/FIN-01"
    assert (offer.price, offer.interruptible_price) == (Decimal("0.28"), Decimal("0.1"))
    assert (offer.upstream_cloud, offer.memory_gb, offer.accelerator) == (
        "datacrunch",
        16.0,
        "NVIDIA V100-SXM2-16GB",
    )
    assert report.spot_merged == 1
    assert dict(report.skipped) == {"cpu_only": 1, "spot_without_on_demand": 1}
    assert report.rows_read == 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"gpu_8x,H100,8.0,208.0,1800.0,abc,us-east-1,{H100_INFO},", "Price 'abc' is not a number"),
        (
            f"gpu_8x,H100,8.0,208.0,1800.0,-1,us-east-1,{H100_INFO},",
            "Price '-1' is not a non-negative number",
        ),
        ("gpu_8x,H100,8.0,208.0,1800.0,1,us-east-1,\"{'Gpus': [\",", "GpuInfo cannot be parsed"),
        ("gpu_8x,H100,2.5,208.0,1800.0,1,us-east-1,,", "AcceleratorCount '2.5' is not whole"),
        ("gpu_8x,H100,8.0,208.0,1800.0,1,us-east-1", "expected 9 fields"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "lambda" / "vms.csv", [LAMBDA_HEADER, "cpu_4x,,,4.0,16.0,0.2,us-east-1,,", line])
    with pytest.raises(CatalogError) as err:
        read_cloud(path, "lambda")
    assert err.value.line == 3
    assert err.value.path == str(path)
    assert message in str(err.value)
    assert str(err.value).startswith(f"{path}, line 3: ")


def test_missing_column_and_empty_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "lambda" / "vms.csv", ["InstanceType,AcceleratorName,Price", "a,,1"])
    with pytest.raises(
        CatalogError, match="line 1: missing column\\(s\\) AcceleratorCount, vCPUs, MemoryGiB, Region"
    ):
        read_cloud(path, "lambda")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="no <cloud>/vms.csv files found"):
        read_catalog(tmp_path / "empty")


def test_external_id() -> None:
    assert external_id("gpu_1x_a10", "us-east-1", "") == "gpu_1x_a10@us-east-1"
    assert (
        external_id("lambdalabs__1xA100_40GB__30__200", "US", "us-east-1")
        == "lambdalabs__1xA100_40GB__30__200@US/us-east-1"
    )
