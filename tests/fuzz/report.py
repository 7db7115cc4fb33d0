"""Figures of the fuzz run, collected by the test and printed in pytest's terminal summary (conftest.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

RUNS: list[FuzzRun] = []


@dataclass
class FuzzRun:
    per_role: Counter = field(default_factory=Counter)
    per_operation: Counter = field(default_factory=Counter)  # (role, "METHOD /path")
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # first failure per (role, operation)
    failure_count: int = 0
    unsatisfiable: list[str] = field(default_factory=list)  # (role, operation) with no negative case possible

    @property
    def total(self) -> int:
        return sum(self.per_role.values())

    def record(self, role: str, label: str, status: int, failure: str | None, case) -> None:
        self.per_role[role] += 1
        self.per_operation[(role, label)] += 1
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append(f"{role} {label} -> {status}")
        if failure is not None:
            self.failure_count += 1
            if (role, label) not in self.failures:
                self.failures[(role, label)] = f"{failure}\n    reproduce: {case.as_curl_command()}"

    def summary(self) -> list[str]:
        operations = {label for (_, label) in self.per_operation}
        counts = sorted(self.per_operation.values())
        return [
            f"schemathesis: {self.total} requests over {len(operations)} operations "
            f"(per role: {', '.join(f'{r} {n}' for r, n in self.per_role.items())})",
            f"  requests per operation and role: min {counts[0] if counts else 0}, max {counts[-1] if counts else 0}",
            f"  status codes: {', '.join(f'{s}: {n}' for s, n in sorted(self.statuses.items()))}",
            f"  server errors (5xx): {len(self.server_errors)}; schema/check failures: {self.failure_count} "
            f"in {len(self.failures)} (role, operation) pairs",
        ]

    def failure_text(self) -> str:
        lines = self.summary()
        for (role, label), text in sorted(self.failures.items()):
            lines.append(f"--- {role} {label}\n{text[:1200]}")
        return "\n".join(lines)
