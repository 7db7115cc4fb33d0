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
    role_classes: Counter = field(default_factory=Counter)  # (role, "2xx")
    successes: Counter = field(default_factory=Counter)  # operation -> 2xx answers
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
        self.role_classes[(role, f"{status // 100}xx")] += 1
        if 200 <= status < 300:
            self.successes[label] += 1
        if status >= 500:
            self.server_errors.append(f"{role} {label} -> {status}")
        if failure is not None:
            self.failure_count += 1
            if (role, label) not in self.failures:
                self.failures[(role, label)] = f"{failure}\n    reproduce: {case.as_curl_command()}"

    def per_label(self) -> Counter:
        out: Counter = Counter()
        for (_, label), n in self.per_operation.items():
            out[label] += n
        return out

    def summary(self, *, operations: bool = False) -> list[str]:
        per_label = self.per_label()
        counts = sorted(self.per_operation.values())
        roles = ", ".join(
            f"{role} {n} ({' '.join(f'{c} {self.role_classes[(role, c)]}' for c in ('2xx', '4xx', '5xx'))})"
            for role, n in self.per_role.items())
        lines = [
            f"schemathesis: {self.total} requests over {len(per_label)} operations; per role: {roles}",
            f"  requests per operation and role: min {counts[0] if counts else 0}, max {counts[-1] if counts else 0}",
            f"  status codes: {', '.join(f'{s}: {n}' for s, n in sorted(self.statuses.items()))}",
            f"  server errors (5xx): {len(self.server_errors)}; schema/check failures: {self.failure_count} "
            f"in {len(self.failures)} (role, operation) pairs",
        ]
        if operations:
            lines += [f"  {n:4d} requests, {self.successes[label]:3d} 2xx  {label}"
                      for label, n in sorted(per_label.items(), key=lambda item: item[0].split(" ", 1)[::-1])]
        return lines

    def failure_text(self) -> str:
        lines = self.summary()
        for (role, label), text in sorted(self.failures.items()):
            lines.append(f"--- {role} {label}\n{text[:1200]}")
        return "\n".join(lines)
