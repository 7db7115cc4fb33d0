"""Fixtures of the driver tests: a Redis namespace per test for the simulated driver, a controllable clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_url() -> str:
    from tests.worker_process import redis_url_for_tests

    url = redis_url_for_tests()
    if url is None:
        pytest.skip("no Redis answers (CI runs one on 127.0.0.1:6379)")
    return url


@pytest.fixture
def sim_namespace(redis_url: str) -> Iterator[str]:
    """A fresh namespace; every key of it is deleted afterwards."""
    from workers.drivers.simulated import SimulatedDriver

    namespace = f"test-{uuid.uuid4().hex[:12]}"
    yield namespace
    SimulatedDriver(redis_url=redis_url, namespace=namespace).reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sim(redis_url: str, sim_namespace: str, clock: FakeClock):
    from workers.drivers.simulated import SimulatedDriver

    def make(*, real_time: bool = False, **knobs) -> SimulatedDriver:
        extra = {} if real_time else {"clock": clock}
        return SimulatedDriver(redis_url=redis_url, namespace=sim_namespace, **extra, **knobs)

    return make


SECRET = "test-secret-0123456789abcdef"


@pytest.fixture
def agent(tmp_path) -> Iterator:
    """The real reference agent on 127.0.0.1 (2 slots), stopped afterwards; jobs left running are killed."""
    from tests.drivers.agent_process import AgentProcess, kill_leftovers

    process = AgentProcess(work_dir=tmp_path / "agent", secret=SECRET)
    with process:
        yield process
    kill_leftovers(process.work_dir)
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture
def agent_driver(agent):
    from workers.drivers.registry import get_driver

    return get_driver("agent", **agent.driver_config())
