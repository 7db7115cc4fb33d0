"""Rebuild marketplace/demo/offers.csv from a SkyPilot catalog folder (run by a developer, not at run time).

    python -m marketplace.demo.build_demo_offers ../shared/data/skypilot-catalog

Every offer the importer would create becomes one row in our own format (instance, accelerator, count,
memory, price, region, ...); the hand-written rows marked synthetic=yes in the existing file are kept as they
are. The output is deterministic (sorted by provider and external id).
"""

from __future__ import annotations

import argparse
import csv
import sys
from decimal import Decimal
from pathlib import Path

from broker.catalogs.skypilot import AGGREGATORS, read_catalog
from marketplace.demo import COLUMNS, OFFERS_CSV, DemoOffer, format_row, read_demo_offers

CLOUD_NAMES = {
    "lambda": "Lambda",
    "nebius": "Nebius",
    "primeintellect": "Prime Intellect",
    "seeweb": "Seeweb",
    "hyperbolic": "Hyperbolic",
    "hyperstack": "Hyperstack",
    "jarvislabs": "JarvisLabs",
    "mithril": "Mithril",
}

HEADER = """\
# Demo offers for the compute broker, in the project's own format (see marketplace/demo/README.md).
# Rows with synthetic=no are derived from skypilot-org/skypilot-catalog, schema v8
# (catalogs/v8/<cloud>/vms.csv; files and commits listed in marketplace/demo/README.md). That repository has
# no explicit licence; these are factual prices, carried here in our own format, not the original files.
# Rows with synthetic=yes are hand-written demo offers for hardware those clouds do not carry: NOT real.
# Regenerate the derived rows: python -m marketplace.demo.build_demo_offers ../shared/data/skypilot-catalog
"""


def derived_offers(source_dir: Path) -> list[DemoOffer]:
    offers, _ = read_catalog(source_dir)
    return [
        DemoOffer(
            provider=o.cloud,
            provider_name=CLOUD_NAMES.get(o.cloud, o.cloud.title()),
            provider_kind="aggregator" if o.cloud in AGGREGATORS else "cloud",
            catalog="skypilot",
            external_id=o.external_id,
            name=o.name,
            accelerator=o.accelerator,
            count=o.count,
            memory_gb=o.memory_gb,
            vcpus=o.vcpus,
            ram_gb=o.ram_gb,
            disk_gb=o.disk_gb,
            interconnect=o.interconnect,
            inter_node="none",
            region_key=o.region_key,
            price_per_hour=o.price,
            interruptible_price_per_hour=o.interruptible_price,
            upstream_cloud=o.upstream_cloud,
            driver="simulated",
            nodes_available=1,
            min_rental_hours=Decimal("0"),
            synthetic=False,
        )
        for o in offers
    ]


def build(source_dir: Path, out: Path = OFFERS_CSV) -> tuple[int, int]:
    synthetic = [o for o in read_demo_offers(out) if o.synthetic] if out.exists() else []
    derived = sorted(derived_offers(source_dir), key=lambda o: (o.provider, o.external_id))
    with open(out, "w", newline="", encoding="utf-8") as fh:
        fh.write(HEADER)
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for offer in [*derived, *synthetic]:
            writer.writerow(format_row(offer))
    return len(derived), len(synthetic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_dir", type=Path, help="folder with <cloud>/vms.csv (SkyPilot catalog v8)")
    parser.add_argument("--out", type=Path, default=OFFERS_CSV)
    args = parser.parse_args(argv)
    derived, synthetic = build(args.source_dir, args.out)
    print(f"wrote {args.out}: {derived} derived rows, {synthetic} synthetic rows kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
