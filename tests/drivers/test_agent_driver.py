"""The agent driver against the real reference agent (a subprocess on 127.0.0.1): jobs really run."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.drivers.agent_process import AgentProcess, kill_leftovers, pid_gone, pid_gone_within
from tests.drivers.conftest import SECRET
from workers.drivers.base import (
    CapacityGoneError,
    JobSpec,
    JobState,
    TerminalDriverError,
)
from workers.drivers.http import sign_request
from workers.drivers.registry import get_driver

pytestmark = pytest.mark.slow


def spec(key: str, command: str, **kw) -> JobSpec:
    values = dict(order_id=7, idempotency_key=key, offer_external_id="agent-default", nodes=1,
                  accelerators_per_node=1, accelerator="NVIDIA T4", command=command, time_limit_s=60)
    values.update(kw)
    return JobSpec(**values)


def wait_for(driver, ref: str, states: set[JobState], timeout: float = 10) -> JobState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.status(ref).state
        if state in states:
            return state
        time.sleep(0.02)
    raise AssertionError(f"job {ref} still {driver.status(ref)} after {timeout}s")


def job_files(agent: AgentProcess) -> list[str]:
    jobs = agent.work_dir / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.exists() else []


def test_job_runs_streams_logs_and_reports_exit_code_and_usage(agent, agent_driver) -> None:
    command = ("echo start; echo \"FOO=$FOO\"; echo \"secret=${AGENT_SECRET:-not visible}\"; echo \"home=$HOME\"; "
               f"echo oops >&2; sleep 0.6; {sys.executable} -c 'sum(range(4_000_000))'; echo done")
    ref = agent_driver.create(spec("order:7:attempt:1", command, env={"FOO": "bar baz"}))
    assert ref.startswith("job-")
    assert wait_for(agent_driver, ref, {JobState.RUNNING}) == JobState.RUNNING
    early = agent_driver.logs(ref)
    assert early.complete is False
    assert wait_for(agent_driver, ref, {JobState.SUCCEEDED, JobState.FAILED}) == JobState.SUCCEEDED
    status = agent_driver.status(ref)
    assert (status.exit_code, status.message) == (0, "exited with code 0")
    rest = agent_driver.logs(ref, early.next_offset)
    job_dir = agent.work_dir / "jobs" / ref
    expected = f"start\nFOO=bar baz\nsecret=not visible\nhome={job_dir}\noops\ndone\n"
    assert early.text + rest.text == expected
    assert rest.complete is True and rest.next_offset == len(expected.encode())
    assert agent_driver.logs(ref, rest.next_offset).text == ""
    usage = agent_driver.usage(ref)
    assert usage.exit_code == 0
    assert 0.6 <= usage.elapsed_s < 5
    assert usage.accelerator_s == usage.elapsed_s  # 1 node x 1 accelerator
    assert usage.details["cpu_s"] > 0.05          # the python loop burned CPU in the job's process tree
    assert usage.details["max_rss_kb"] > 0


def test_failing_job_and_logs_split_inside_a_utf8_character(agent, agent_driver) -> None:
    ref = agent_driver.create(spec("fail", "printf 'caf\\303\\251\\n'; exit 3"))
    assert wait_for(agent_driver, ref, {JobState.FAILED}) == JobState.FAILED
    assert agent_driver.status(ref).exit_code == 3
    # Raw reads of 4 bytes: the 2-byte "é" must not be cut in half.
    body = _signed_get(agent, f"/v1/jobs/{ref}/logs?offset=0&limit=4")
    assert (body["text"], body["next_offset"], body["complete"]) == ("caf", 3, False)
    body = _signed_get(agent, f"/v1/jobs/{ref}/logs?offset=3&limit=4")
    assert (body["text"], body["next_offset"], body["complete"]) == ("é\n", 6, True)


def test_terminate_kills_the_whole_process_group(agent, agent_driver) -> None:
    command = "sleep 300 & echo $! > child.pid; echo $$ > shell.pid; echo started; wait"
    ref = agent_driver.create(spec("term", command))
    job_dir = agent.work_dir / "jobs" / ref
    deadline = time.monotonic() + 5
    while not ((job_dir / "child.pid").exists() and (job_dir / "shell.pid").exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)
    child, shell = (int((job_dir / f).read_text()) for f in ("child.pid", "shell.pid"))
    assert not pid_gone(child) and not pid_gone(shell)
    agent_driver.terminate(ref)
    status = agent_driver.status(ref)
    assert (status.state, status.exit_code, status.message) == (JobState.CANCELLED, -15, "terminated on request")
    deadline = time.monotonic() + 3
    while not (pid_gone(child) and pid_gone(shell)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pid_gone(child) and pid_gone(shell)
    agent_driver.terminate(ref)  # a finished job: no-op
    assert agent_driver.status(ref).state == JobState.CANCELLED


def test_time_limit_kills_the_job(agent, agent_driver) -> None:
    started = time.monotonic()
    ref = agent_driver.create(spec("slow", "echo $$ > shell.pid; sleep 30", time_limit_s=1))
    assert wait_for(agent_driver, ref, {JobState.TIMEOUT}) == JobState.TIMEOUT
    assert 1.0 <= time.monotonic() - started < 3.0
    assert agent_driver.status(ref).message == "killed at the time limit of 1s"
    assert pid_gone_within(int((agent.work_dir / "jobs" / ref / "shell.pid").read_text()))
    assert 1.0 <= agent_driver.usage(ref).elapsed_s < 2.5


def test_same_idempotency_key_gives_one_job_and_one_process(agent, agent_driver, tmp_path) -> None:
    runs = tmp_path / "runs.txt"
    job = spec("order:8:attempt:1", f"echo ran >> {runs}")
    refs: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        driver = get_driver("agent", **agent.driver_config())
        barrier.wait()
        refs.append(driver.create(job))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(refs) == 8 and len(set(refs)) == 1
    wait_for(agent_driver, refs[0], {JobState.SUCCEEDED})
    assert agent_driver.create(job) == refs[0]  # after it finished, too
    assert runs.read_text() == "ran\n"
    assert job_files(agent) == [refs[0]]
    with pytest.raises(TerminalDriverError) as err:  # the same key for another spec is refused
        agent_driver.create(spec("order:8:attempt:1", "echo something else"))
    assert err.value.code == "idempotency_conflict"


def test_full_agent_is_capacity_gone(agent, agent_driver) -> None:
    first = agent_driver.create(spec("a", "sleep 30"))
    second = agent_driver.create(spec("b", "sleep 30"))
    with pytest.raises(CapacityGoneError) as err:
        agent_driver.create(spec("c", "sleep 30"))
    assert err.value.message == "agent create: all 2 slot(s) of this agent are busy"
    assert sorted(job_files(agent)) == sorted([first, second])
    agent_driver.terminate(first)
    third = agent_driver.create(spec("c", "true"))  # a slot is free again
    assert wait_for(agent_driver, third, {JobState.SUCCEEDED}) == JobState.SUCCEEDED
    agent_driver.terminate(second)


def test_wrong_signature_is_refused_and_starts_nothing(agent, tmp_path) -> None:
    marker = tmp_path / "must-not-exist"
    wrong = get_driver("agent", **agent.driver_config(secret="not-the-secret-0123456789"))
    with pytest.raises(TerminalDriverError) as err:
        wrong.create(spec("x", f"touch {marker}"))
    assert err.value.code == "agent_auth_refused"
    assert "bad_signature" in err.value.message
    other_key = get_driver("agent", **agent.driver_config(key_id="someone-else/default"))
    with pytest.raises(TerminalDriverError) as err:
        other_key.create(spec("x", f"touch {marker}"))
    assert "unknown_key" in err.value.message
    time.sleep(0.2)
    assert not marker.exists() and job_files(agent) == []
    status, body = _raw(agent, "POST", "/v1/jobs", {"idempotency_key": "x", "command": "true", "time_limit_s": 5},
                        headers={})
    assert (status, body["error"]["code"]) == (401, "missing_signature")
    assert job_files(agent) == []


def test_replayed_request_is_refused_even_after_an_agent_restart(agent, tmp_path) -> None:
    marker = tmp_path / "runs.txt"
    body = json.dumps({"idempotency_key": "replay", "command": f"echo ran >> {marker}", "time_limit_s": 5}).encode()
    headers = sign_request(secret=SECRET, key_id=agent.key_id, method="POST", path="/v1/jobs", body=body)
    first = _send(agent, "POST", "/v1/jobs", body, headers)
    assert first[0] == 201
    second = _send(agent, "POST", "/v1/jobs", body, headers)
    assert (second[0], second[1]["error"]["code"]) == (401, "replayed_nonce")
    agent.stop()
    agent.start()
    third = _send(agent, "POST", "/v1/jobs", body, headers)
    assert (third[0], third[1]["error"]["code"]) == (401, "replayed_nonce")
    time.sleep(0.3)
    assert marker.read_text() == "ran\n"
    assert len(job_files(agent)) == 1


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_timestamp_is_refused(agent, skew: int) -> None:
    body = json.dumps({"idempotency_key": "stale", "command": "true", "time_limit_s": 5}).encode()
    headers = sign_request(secret=SECRET, key_id=agent.key_id, method="POST", path="/v1/jobs", body=body,
                           now=time.time() + skew)
    status, answer = _send(agent, "POST", "/v1/jobs", body, headers)
    assert (status, answer["error"]["code"]) == (401, "stale_timestamp")
    assert job_files(agent) == []


def test_tampered_body_is_refused(agent) -> None:
    body = json.dumps({"idempotency_key": "t", "command": "true", "time_limit_s": 5}).encode()
    headers = sign_request(secret=SECRET, key_id=agent.key_id, method="POST", path="/v1/jobs", body=body)
    tampered = body.replace(b"true", b"rm -rf /tmp/nothing")
    status, answer = _send(agent, "POST", "/v1/jobs", tampered, headers)
    assert (status, answer["error"]["code"]) == (401, "bad_signature")
    assert job_files(agent) == []


def test_bad_job_specs_are_terminal_400s(agent, agent_driver) -> None:
    with pytest.raises(TerminalDriverError) as err:
        agent_driver.create(spec("empty", "   "))
    assert err.value.code == "invalid"
    with pytest.raises(TerminalDriverError) as err:
        agent_driver.create(spec("long", "true", time_limit_s=10**9))
    assert err.value.code == "invalid"
    status, answer = _raw(agent, "POST", "/v1/jobs", {"idempotency_key": "e", "command": "true",
                                                      "time_limit_s": 5, "env": {"1BAD": "x", "OK": 3}})
    assert status == 400
    assert answer["error"]["fields"] == {"env": ["invalid names or non-string values: 1BAD, OK"]}
    assert job_files(agent) == []


def test_unknown_job(agent_driver) -> None:
    ref = "job-0000000000000000"
    assert agent_driver.status(ref).state == JobState.LOST
    agent_driver.terminate(ref)
    with pytest.raises(TerminalDriverError) as err:
        agent_driver.logs(ref)
    assert err.value.code == "job_unknown"


def test_restarted_agent_adopts_its_running_job(agent, agent_driver, tmp_path) -> None:
    runs = tmp_path / "runs.txt"
    job = spec("adopt", f"echo ran >> {runs}; sleep 1.5; echo finished")
    ref = agent_driver.create(job)
    wait_for(agent_driver, ref, {JobState.RUNNING})
    agent.stop()
    agent.start()  # same work dir, new port
    driver = get_driver("agent", **agent.driver_config())
    assert driver.create(job) == ref
    assert driver.status(ref).state == JobState.RUNNING
    assert wait_for(driver, ref, {JobState.SUCCEEDED}) == JobState.SUCCEEDED
    assert driver.status(ref).exit_code == 0  # read from the exit-code file the wrapper wrote
    assert driver.logs(ref).text == "finished\n"
    assert runs.read_text() == "ran\n"


def test_secret_rotation_on_the_agent(tmp_path) -> None:
    old, new = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
    process = AgentProcess(work_dir=tmp_path / "agent", secret=new,
                           extra=["--previous-secret-grace", "2"], env={"AGENT_PREVIOUS_SECRET": old})
    with process:
        try:
            with_old = get_driver("agent", **process.driver_config(secret=old))
            ref = with_old.create(spec("r1", "true"))           # old secret: accepted during the grace period
            with_new = get_driver("agent", **process.driver_config(secret=new))
            assert with_new.status(ref).state in (JobState.RUNNING, JobState.SUCCEEDED)
            time.sleep(2.2)
            with pytest.raises(TerminalDriverError) as err:     # after it: refused
                with_old.status(ref)
            assert err.value.code == "agent_auth_refused"
            assert with_new.status(ref).state == JobState.SUCCEEDED
        finally:
            kill_leftovers(process.work_dir)


def test_broker_falls_back_to_the_previous_secret_while_the_agent_has_not_been_updated(agent) -> None:
    # The broker rotated (signs with the new secret first) but the agent still runs with the old one.
    driver = get_driver("agent", **agent.driver_config(secret="rotated-secret-0123456789",
                                                       fallback_secrets=[SECRET]))
    ref = driver.create(spec("fallback", "true"))
    assert wait_for(driver, ref, {JobState.SUCCEEDED}) == JobState.SUCCEEDED


# ------------------------------------------------------------------------------------------------ helpers
def _send(agent: AgentProcess, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(agent.url + path, data=body if method == "POST" else None, method=method,
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _raw(agent: AgentProcess, method: str, path: str, payload: dict, headers: dict | None = None
         ) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    if headers is None:
        headers = sign_request(secret=SECRET, key_id=agent.key_id, method=method, path=path, body=body)
    return _send(agent, method, path, body, headers)


def _signed_get(agent: AgentProcess, path: str) -> dict:
    headers = sign_request(secret=SECRET, key_id=agent.key_id, method="GET", path=path, body=b"")
    status, body = _send(agent, "GET", path, b"", headers)
    assert status == 200, body
    return body

