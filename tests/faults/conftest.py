"""Fixtures of the fault tests: the order tests' fixtures (offers, quotes, the simulated driver, real workers),
private processes to break (tests/faults/processes.py), and the figures each test prints.

Each test records its figures with `report_figures(name, **figures)`: they are printed at once (visible with
`-s`) and again in pytest's terminal summary, so `make test` shows them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.faults.processes import RedisServer
from tests.orders.conftest import (  # noqa: F401 - fixtures re-exported for this package
    fake,
    fake_server,
    make_node_offer,
    make_quote,
    make_user,
    module_worker,
    private_queue,
    redis_url,
    sim,
    sim_namespace,
    start_worker,
    worker,
)

_FIGURES: list[tuple[str, dict]] = []


def report_figures(name: str, **figures: object) -> None:
    _FIGURES.append((name, figures))
    print(f"\nFAULT FIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault figures")
    for name, figures in _FIGURES:
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


@pytest.fixture
def private_redis(tmp_path: Path):
    """A redis-server of this test alone (no persistence), stopped at the end."""
    server = RedisServer(tmp_path / f"redis-{uuid.uuid4().hex[:6]}")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api_token(customer) -> str:
    from marketplace.services.tokens import token_create

    _, key = token_create(user=customer, name="faults")
    return key
