"""CSV upload of machines: read the file, check every row, and import only when the provider confirms.

The check is a dry run of the real bulk upsert (the same service the API uses) inside a transaction that is
always rolled back, so the report lists exactly what the import would refuse, row by row, and a clean report
means the import will go through as shown. The import itself is all-or-nothing: a bad row never half-imports.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from marketplace.api.offer_serializers import OfferWriteSerializer
from marketplace.errors import DomainError, ValidationFailed
from marketplace.models import Offer, User
from marketplace.services.offers import BulkResult, offers_bulk_upsert

TEMPLATE_COLUMNS = ("external_id", "name", "accelerator", "count", "memory_gb", "vcpus", "ram_gb", "disk_gb",
                    "interconnect", "inter_node", "region", "price_per_hour", "interruptible_price_per_hour",
                    "nodes_available", "min_rental_hours", "status")
TEMPLATE_ROWS = (
    ("node-h100-01", "gpu-8x-h100", "H100", "8", "80", "192", "2048", "8000", "nvlink", "infiniband",
     "us-east-virginia", "24.00", "12.00", "4", "1", "listed"),
    ("node-l40s-01", "gpu-4x-l40s", "L40S", "4", "", "64", "512", "2000", "pcie", "none", "eu-finland",
     "5.20", "", "10", "0", "listed"),
)


class CsvFileError(ValueError):
    """The file as a whole cannot be read (encoding, shape, unknown columns)."""


@dataclass(frozen=True, slots=True)
class ParsedCsv:
    rows: list[dict[str, str]]  # raw cells by column, empty cells left out
    lines: list[int]  # the CSV line number of each row


@dataclass
class RowReport:
    line: int
    cells: dict[str, str]
    errors: list[str] = field(default_factory=list)
    action: str = ""  # create | update | unchanged (when the file is clean)


@dataclass
class Report:
    rows: list[RowReport]
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    message: str = ""

    @property
    def bad_rows(self) -> list[RowReport]:
        return [r for r in self.rows if r.errors]

    @property
    def clean(self) -> bool:
        return not self.bad_rows and not self.message


def read_csv(content: bytes) -> ParsedCsv:
    """Rows of a CSV with a header of offer field names (the same format as POST /api/v1/offers/bulk/)."""
    if len(content) > settings.CSV_MAX_BYTES:
        raise CsvFileError(f"The file is {len(content):,} bytes; the limit is {settings.CSV_MAX_BYTES:,}.")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvFileError("The file is not UTF-8 text; save it as “CSV UTF-8” and upload again.") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        table = list(reader)
    except csv.Error as exc:
        raise CsvFileError(f"Line {reader.line_num} is not valid CSV: {exc}.") from None
    if not table or not any(cell.strip() for cell in table[0]):
        raise CsvFileError("The file is empty: expected a header row, then one machine per row.")
    header = [h.strip() for h in table[0]]
    valid = [name for name in OfferWriteSerializer().fields if name != "provider"]
    unknown = [h for h in header if h not in valid]
    if unknown:
        raise CsvFileError(f"Unknown column(s) {', '.join(unknown)}. Valid columns: {', '.join(valid)}.")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise CsvFileError(f"Column(s) {', '.join(duplicated)} appear more than once in the header.")
    rows, lines = [], []
    for number, cells in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise CsvFileError(f"Line {number} has {len(cells)} cells; the header has {len(header)}.")
        rows.append({k: v.strip() for k, v in zip(header, cells, strict=True) if v.strip()})
        lines.append(number)
    if not rows:
        raise CsvFileError("The file has a header but no machines.")
    if len(rows) > settings.OFFERS_BULK_MAX_ROWS:
        raise CsvFileError(f"The file has {len(rows)} machines; at most {settings.OFFERS_BULK_MAX_ROWS} per upload.")
    return ParsedCsv(rows, lines)


def _typed(row: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    serializer = OfferWriteSerializer(data=row, partial=True)
    if serializer.is_valid():
        return dict(serializer.validated_data), {}
    errors = {k: [str(m) for m in v] for k, v in serializer.errors.items()}
    rest = OfferWriteSerializer(data={k: v for k, v in row.items() if k not in errors}, partial=True)
    return (dict(rest.validated_data) if rest.is_valid() else {}), errors


def _prepared(user: User, parsed: ParsedCsv, list_new: bool) -> tuple[list[dict], dict[int, dict]]:
    typed = [_typed(row) for row in parsed.rows]
    values = [v for v, _ in typed]
    if list_new and user.provider_id is not None:
        ids = [v.get("external_id") for v in values if v.get("external_id")]
        existing = set(Offer.objects.filter(provider_id=user.provider_id, external_id__in=ids)
                       .values_list("external_id", flat=True))
        for v in values:
            if "status" not in v and v.get("external_id") not in existing:
                v["status"] = Offer.Status.LISTED
    return values, {i: e for i, (_, e) in enumerate(typed) if e}


class _DryRun(Exception):
    def __init__(self, result: BulkResult):
        self.result = result


def check(user: User, parsed: ParsedCsv, *, list_new: bool) -> Report:
    """What importing the file would do, row by row. Writes nothing (the transaction is rolled back)."""
    report = Report([RowReport(line, cells) for line, cells in zip(parsed.lines, parsed.rows, strict=True)])
    values, input_errors = _prepared(user, parsed, list_new)
    try:
        with transaction.atomic():
            raise _DryRun(offers_bulk_upsert(user=user, rows=values, input_errors=input_errors))
    except _DryRun as dry:
        _count(report, dry.result)
    except ValidationFailed as exc:
        _attach(report, exc)
    except DomainError as exc:
        report.message = exc.message
    return report


def commit(user: User, parsed: ParsedCsv, *, list_new: bool) -> tuple[Report, BulkResult | None]:
    """Import the file for real, all rows or none. Returns the report and, when it went through, the result."""
    report = Report([RowReport(line, cells) for line, cells in zip(parsed.lines, parsed.rows, strict=True)])
    values, input_errors = _prepared(user, parsed, list_new)
    try:
        result = offers_bulk_upsert(user=user, rows=values, input_errors=input_errors)
    except ValidationFailed as exc:
        _attach(report, exc)
        return report, None
    except DomainError as exc:
        report.message = exc.message
        return report, None
    _count(report, result)
    return report, result


def _count(report: Report, result: BulkResult) -> None:
    created, updated = set(result.created), set(result.updated)
    for row, offer_id in zip(report.rows, result.ids, strict=True):
        row.action = "create" if offer_id in created else "update" if offer_id in updated else "unchanged"
    report.created, report.updated, report.unchanged = len(created), len(updated), len(result.unchanged)


def _attach(report: Report, exc: ValidationFailed) -> None:
    per_row = exc.fields.get("offers")
    if not isinstance(per_row, dict):
        report.message = exc.message
        return
    for index, errors in per_row.items():
        row = report.rows[int(index)]
        row.errors = [f"{name}: {message}" for name, messages in errors.items() for message in messages]
    report.message = ""


def template_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TEMPLATE_COLUMNS)
    writer.writerows(TEMPLATE_ROWS)
    return out.getvalue()
