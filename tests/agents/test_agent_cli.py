"""The agent's command line: --port 0 asks the OS for a free port (it used to become 8701) and the bound port is
printed, so several agents (or test runs) can share a machine."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.drivers.agent_process import AgentProcess
from workers.agent.cli import build_config

SECRET = "agent-cli-test-secret-0123456789"


@pytest.mark.parametrize(("given", "port"), [(None, 8701), ("", 8701), (0, 0), ("0", 0), (9123, 9123)])
def test_port_option(given, port, tmp_path: Path):
    options = {"provider": "p", "work_dir": str(tmp_path)}
    if given is not None:
        options["port"] = given
    assert build_config(options, SECRET).port == port


def test_two_agents_with_port_0_get_distinct_free_ports_and_print_them(tmp_path: Path):
    with AgentProcess(work_dir=tmp_path / "a", secret=SECRET) as first, \
            AgentProcess(work_dir=tmp_path / "b", secret=SECRET) as second:
        ports = {int(first.url.rsplit(":", 1)[1]), int(second.url.rsplit(":", 1)[1])}
        assert len(ports) == 2 and 8701 not in ports
        for agent in (first, second):
            assert f"listening on {agent.url}\n" in agent.log()  # the printed line, besides the log line
            with urllib.request.urlopen(f"{agent.url}/v1/health", timeout=5) as answer:
                assert answer.status == 200
