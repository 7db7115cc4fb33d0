"""`manage.py import_catalog skypilot DIR [--json]`: import a price catalog folder and print what happened."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from broker.catalogs.model import ImportReport
from marketplace.errors import DomainError
from marketplace.services.catalog_import import CATALOGS, catalog_import


def format_report(report: ImportReport) -> str:
    lines = [
        f"Imported {report.catalog} catalog from {report.source} in {report.seconds:.2f} s",
        f"  rows read {report.rows_read} (with accelerators {report.rows_with_accelerator}), "
        f"offers {report.offers}, spot rows merged {report.spot_merged}",
        f"  offers created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
        f"unlisted {report.unlisted}, relisted {report.relisted}; regions created {report.regions_created}, "
        f"providers created {report.providers_created}",
    ]
    lines.append("  skipped: " + (_counts(report.skipped) or "none"))
    lines.append("  unknown accelerators: " + (_counts(report.unknown_accelerators) or "none"))
    lines.append("")
    lines.append(
        f"  {'cloud':<16}{'rows':>6}{'gpu rows':>10}{'offers':>8}{'spot merged':>13}  skipped / unknown"
    )
    for c in report.clouds:
        extra = "; ".join(x for x in (_counts(c.skipped), _counts(c.unknown_accelerators)) if x)
        lines.append(
            f"  {c.cloud:<16}{c.rows_read:>6}{c.rows_with_accelerator:>10}{c.offers:>8}"
            f"{c.spot_merged:>13}  {extra}"
        )
        if c.unmapped_regions:
            lines.append(
                f"  {'':<16}regions without a catalog_regions.csv row: {', '.join(c.unmapped_regions)}"
            )
    return "\n".join(lines)


def _counts(mapping: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in mapping.items())


class Command(BaseCommand):
    help = "Import a price catalog folder (SkyPilot format: DIR/<cloud>/vms.csv) into providers and offers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("catalog", choices=CATALOGS, help="Catalog format.")
        parser.add_argument("source_dir", help="Folder holding <cloud>/vms.csv files.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = catalog_import(options["source_dir"], catalog=options["catalog"])
        except DomainError as exc:
            raise CommandError(f"import failed, nothing was written: {exc.message}") from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(format_report(report))
