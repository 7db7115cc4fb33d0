"""Reading brokerctl's tables in tests."""

from __future__ import annotations

import re


def table(text: str) -> list[list[str]]:
    """The cells of a brokerctl table, checking that every column starts where its header does."""
    lines = text.rstrip("\n").split("\n")
    starts = [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", lines[0])]
    rows = []
    for line in lines:
        cells = re.split(r" {2,}", line.rstrip())
        assert len(cells) == len(starts), f"{line!r} does not have {len(starts)} columns"
        offsets = [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", line)]
        assert offsets == starts, f"{line!r} is not aligned with the header {lines[0]!r}"
        rows.append(cells)
    return rows
