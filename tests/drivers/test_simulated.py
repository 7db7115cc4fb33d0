"""The simulated driver against real Redis: timelines, seeded failures, capacity loss, shared idempotent creates."""

from __future__ import annotations

import threading
import time

import pytest

from workers.drivers.base import (
    CapacityGoneError,
    Driver,
    JobSpec,
    JobState,
    TerminalDriverError,
    TransientDriverError,
)
from workers.drivers.registry import get_driver, registered_drivers


def spec(key: str = "order:1:attempt:1", **kw) -> JobSpec:
    values = dict(order_id=1, idempotency_key=key, offer_external_id="offer-a", nodes=2, accelerators_per_node=4,
                  accelerator="NVIDIA H100-SXM5-80GB", command="python train.py", time_limit_s=60)
    values.update(kw)
    return JobSpec(**values)


def test_registered_by_name_and_flagged_simulated(redis_url, sim_namespace) -> None:
    assert "simulated" in registered_drivers()
    driver = get_driver("simulated", redis_url=redis_url, namespace=sim_namespace, boot_latency_s=0)
    assert isinstance(driver, Driver)
    assert driver.name == "simulated"
    assert driver.simulated is True


def test_timeline_boot_run_success_with_exact_logs_and_usage(make_sim, clock) -> None:
    driver = make_sim(boot_latency_s=5, run_duration_s=3.5)
    ref = driver.create(spec())
    assert ref.startswith("sim-")
    assert driver.status(ref).state == JobState.PENDING
    assert driver.usage(ref).elapsed_s == 0.0

    clock.advance(4.99)
    assert driver.status(ref).state == JobState.PENDING
    clock.advance(0.01 + 2.0)
    running = driver.status(ref)
    assert (running.state, running.exit_code) == (JobState.RUNNING, None)
    first = driver.logs(ref)
    assert first.text == (
        f"[simulated] job {ref} accepted: 2 node(s) x 4 NVIDIA H100-SXM5-80GB on offer offer-a\n"
        "[simulated] booting (boot latency 5.0s)\n"
        "[simulated] running: python train.py\n"
        "[simulated] t+1s: step 1 ok\n"
        "[simulated] t+2s: step 2 ok\n")
    assert first.complete is False

    clock.advance(10)
    done = driver.status(ref)
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    rest = driver.logs(ref, first.next_offset)
    assert rest.text == ("[simulated] t+3s: step 3 ok\n"
                         "[simulated] finished: succeeded (exit code 0): simulated: the job exited with code 0\n")
    assert rest.complete is True
    assert driver.logs(ref, rest.next_offset).text == ""
    usage = driver.usage(ref)
    assert (usage.elapsed_s, usage.accelerator_s, usage.exit_code) == (3.5, 28.0, 0)  # 3.5 s x 2 nodes x 4
    assert usage.details == {"simulated": True, "boot_s": 5.0}


def test_boot_latency_in_real_time(make_sim) -> None:
    driver = make_sim(real_time=True, boot_latency_s=0.4, run_duration_s=0.3)
    started = time.monotonic()
    ref = driver.create(spec())
    states = []
    while (state := driver.status(ref).state) != JobState.SUCCEEDED and time.monotonic() - started < 5:
        if not states or states[-1][0] != state:
            states.append((state, time.monotonic() - started))
        time.sleep(0.02)
    states.append((state, time.monotonic() - started))
    assert [s for s, _ in states] == [JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED]
    assert 0.4 <= states[1][1] < 0.7
    assert 0.7 <= states[2][1] < 1.0


def test_time_limit_and_terminate(make_sim, clock) -> None:
    driver = make_sim(boot_latency_s=1, run_duration_s=None)
    forever = driver.create(spec("k1", time_limit_s=30))
    stopped = driver.create(spec("k2", time_limit_s=30))
    clock.advance(10)
    assert driver.status(forever).state == JobState.RUNNING
    driver.terminate(stopped)
    clock.advance(5)
    driver.terminate(stopped)  # again: the first stop time stays
    assert (driver.status(stopped).state, driver.usage(stopped).elapsed_s) == (JobState.CANCELLED, 9.0)
    clock.advance(100)
    timed_out = driver.status(forever)
    assert (timed_out.state, timed_out.message) == (JobState.TIMEOUT, "simulated: time limit of 30s reached")
    assert driver.usage(forever).elapsed_s == 30.0
    driver.terminate(forever)  # terminating a finished job changes nothing
    assert driver.status(forever).state == JobState.TIMEOUT


def test_terminate_while_booting_cancels(make_sim, clock) -> None:
    driver = make_sim(boot_latency_s=10)
    ref = driver.create(spec())
    clock.advance(3)
    driver.terminate(ref)
    clock.advance(30)
    status = driver.status(ref)
    assert (status.state, status.exit_code) == (JobState.CANCELLED, None)
    assert driver.usage(ref).elapsed_s == 0.0
    assert "running:" not in driver.logs(ref).text


def test_unknown_job(make_sim) -> None:
    driver = make_sim()
    assert driver.status("sim-nope").state == JobState.LOST
    driver.terminate("sim-nope")  # no-op
    with pytest.raises(TerminalDriverError) as err:
        driver.logs("sim-nope")
    assert err.value.code == "job_unknown"


def outcomes(driver, keys: list[str], clock) -> list[JobState]:
    refs = [driver.create(spec(k)) for k in keys]
    clock.advance(1000)
    return [driver.status(r).state for r in refs]


def test_failure_rate_is_deterministic_when_seeded(redis_url, sim_namespace, clock) -> None:
    from workers.drivers.simulated import SimulatedDriver

    keys = [f"order:{i}:attempt:1" for i in range(400)]
    runs = {}
    for label, seed in (("first", 7), ("again", 7), ("other", 8)):
        driver = SimulatedDriver(redis_url=redis_url, namespace=f"{sim_namespace}-{label}", clock=clock, seed=seed,
                                 boot_latency_s=1, run_duration_s=5, failure_rate=0.25)
        try:
            runs[label] = outcomes(driver, keys, clock)
        finally:
            driver.reset()
    assert set(runs["first"]) == {JobState.SUCCEEDED, JobState.FAILED}
    assert runs["first"] == runs["again"]   # same seed, same keys -> same outcomes, even in another namespace
    assert runs["first"] != runs["other"]
    for label in runs:                      # 25 % of 400 = 100; binomial sd ~ 8.7
        assert 70 <= runs[label].count(JobState.FAILED) <= 130


def test_boot_failure_never_runs(make_sim, clock) -> None:
    driver = make_sim(boot_latency_s=2, failure_rate=1.0, seed=1)
    ref = driver.create(spec())
    clock.advance(1)
    assert driver.status(ref).state == JobState.PENDING
    clock.advance(1)
    status = driver.status(ref)
    assert (status.state, status.exit_code, status.message) == (
        JobState.FAILED, None, "simulated: provisioning failed while booting")
    assert driver.logs(ref).text.endswith(
        "[simulated] booting (boot latency 2.0s)\n"
        "[simulated] finished: failed: simulated: provisioning failed while booting\n")


def test_run_failure_and_preemption(make_sim, clock) -> None:
    failing = make_sim(boot_latency_s=1, run_duration_s=10, run_failure_rate=1.0, seed=1)
    ref = failing.create(spec("a"))
    clock.advance(5.9)
    assert failing.status(ref).state == JobState.RUNNING
    clock.advance(0.1)
    assert (failing.status(ref).state, failing.status(ref).exit_code) == (JobState.FAILED, 1)
    assert failing.usage(ref).elapsed_s == 5.0

    preempting = make_sim(boot_latency_s=1, run_duration_s=10, preemption_rate=1.0, seed=1)
    ref = preempting.create(spec("b"))
    clock.advance(6)
    assert (preempting.status(ref).state, preempting.status(ref).message) == (
        JobState.LOST, "simulated: the node was preempted")


def test_capacity_loss_rate_raises_capacity_gone(make_sim) -> None:
    driver = make_sim(capacity_loss_rate=1.0, seed=3)
    with pytest.raises(CapacityGoneError) as err:
        driver.create(spec())
    assert err.value.code == "capacity_gone"
    assert isinstance(err.value, TerminalDriverError)
    assert (driver.create_calls(), driver.jobs_created()) == (1, 0)


def test_revoked_capacity_refuses_creates_and_loses_running_jobs(make_sim, clock) -> None:
    driver = make_sim(boot_latency_s=1)
    running = driver.create(spec("k1", offer_external_id="offer-x"))
    elsewhere = driver.create(spec("k2", offer_external_id="offer-y"))
    clock.advance(4)
    assert make_sim().revoke_capacity("offer-x") == 1  # another instance: the state is shared
    clock.advance(1)
    lost = driver.status(running)
    assert (lost.state, lost.message) == (JobState.LOST, "simulated: the provider reclaimed the capacity")
    assert driver.usage(running).elapsed_s == 3.0
    assert driver.status(elsewhere).state == JobState.RUNNING
    with pytest.raises(CapacityGoneError):
        driver.create(spec("k3", offer_external_id="offer-x"))
    driver.restore_capacity("offer-x")
    assert driver.status(driver.create(spec("k3", offer_external_id="offer-x"))).state == JobState.PENDING
    assert driver.status(running).state == JobState.LOST  # a lost job stays lost


def test_idempotent_create_counter_shared_across_instances(make_sim) -> None:
    one, two = make_sim(), make_sim()
    ref = one.create(spec("order:9:attempt:1"))
    assert two.create(spec("order:9:attempt:1")) == ref
    assert one.create(spec("order:9:attempt:1")) == ref
    assert two.create_calls("order:9:attempt:1") == 3
    assert two.jobs_created("order:9:attempt:1") == 1
    assert one.jobs_created() == 1
    other = two.create(spec("order:9:attempt:2"))
    assert other != ref
    assert (one.create_calls(), one.jobs_created()) == (4, 2)


def test_racing_creates_make_one_job(make_sim) -> None:
    drivers = [make_sim() for _ in range(16)]
    refs: list[str] = []
    barrier = threading.Barrier(len(drivers))

    def run(driver) -> None:
        barrier.wait()
        refs.append(driver.create(spec("race")))

    threads = [threading.Thread(target=run, args=(d,)) for d in drivers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(refs) == 16 and len(set(refs)) == 1
    assert (drivers[0].create_calls("race"), drivers[0].jobs_created()) == (16, 1)


def test_transient_errors_are_seeded_per_call(make_sim) -> None:
    driver = make_sim(transient_error_rate=0.5, seed=11)
    results = []
    for _ in range(20):
        try:
            results.append(driver.create(spec("flaky")))
            break
        except TransientDriverError as exc:
            assert exc.code == "simulated_transient"
            results.append(None)
    assert results[-1] is not None and driver.jobs_created("flaky") == 1
    attempts = len(results)
    # The same seed in a fresh namespace fails the same number of times before succeeding.
    fresh = make_sim(transient_error_rate=0.5, seed=11)
    fresh.namespace += "-again"
    try:
        again = 0
        while True:
            try:
                fresh.create(spec("flaky"))
                break
            except TransientDriverError:
                again += 1
        assert again + 1 == attempts
    finally:
        fresh.reset()


def test_call_latency_beyond_timeout_is_transient(make_sim) -> None:
    driver = make_sim(real_time=True, call_latency_s=30)
    started = time.monotonic()
    with pytest.raises(TransientDriverError) as err:
        driver.create(spec(), timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 0.6
    assert (err.value.code, err.value.message) == ("timeout", "simulated create timed out after 0.3s")
    assert driver.jobs_created() == 0


def test_namespace_and_offer_overrides_reach_other_instances(make_sim, clock) -> None:
    make_sim().configure_offer("bad-offer", failure_rate=1.0)
    make_sim().configure(boot_latency_s=7)
    driver = make_sim(boot_latency_s=1)
    good = driver.create(spec("g", offer_external_id="good-offer"))
    bad = driver.create(spec("b", offer_external_id="bad-offer"))
    clock.advance(6.9)
    assert [driver.status(r).state for r in (good, bad)] == [JobState.PENDING, JobState.PENDING]
    clock.advance(0.1)
    assert [driver.status(r).state for r in (good, bad)] == [JobState.RUNNING, JobState.FAILED]


def test_bad_settings_are_refused(redis_url, sim_namespace) -> None:
    from workers.drivers.simulated import SimulatedDriver

    with pytest.raises(TerminalDriverError) as err:
        SimulatedDriver(redis_url=redis_url, namespace=sim_namespace, failure_rate=1.5)
    assert err.value.message == "failure_rate must be within 0..1, got 1.5"
    with pytest.raises(TerminalDriverError) as err:
        SimulatedDriver(redis_url=redis_url, namespace=sim_namespace, boot_latency=1)
    assert err.value.message == "unknown simulated driver setting(s): boot_latency"
    with pytest.raises(TerminalDriverError):
        SimulatedDriver(redis_url=redis_url, namespace=sim_namespace).configure_offer("x", failure_rate=-1)


def test_redis_down_is_transient() -> None:
    from workers.drivers.simulated import SimulatedDriver

    driver = SimulatedDriver(redis_url="redis://127.0.0.1:1/0", namespace="nowhere")
    with pytest.raises(TransientDriverError) as err:
        driver.create(spec())
    assert "simulated driver state store unavailable" in err.value.message


def test_a_job_is_stored_as_one_json_field_and_a_job_stored_field_by_field_still_reads(make_sim, clock) -> None:
    """A job's hash: its fields as one JSON value ("job") and each stamp apart (HSETNX keeps the first); jobs an
    earlier version stored field by field (every field as JSON) are read too."""
    import json

    driver = make_sim(boot_latency_s=1)
    ref = driver.create(spec())
    key = driver._k("job", ref)
    assert set(driver._r.hkeys(key)) == {"job"}
    stored = json.loads(driver._r.hget(key, "job"))
    assert (stored["ref"], stored["command"], stored["boot_s"]) == (ref, "python train.py", 1.0)
    clock.advance(3)
    driver.terminate(ref)
    assert set(driver._r.hkeys(key)) == {"job", "terminated_at"}
    assert driver.status(ref).state == JobState.CANCELLED

    old = driver._k("job", "sim-old")
    driver._r.hset(old, mapping={**{name: json.dumps(value) for name, value in stored.items()},
                                 "ref": json.dumps("sim-old"), "terminated_at": repr(clock() - 1)})
    assert driver.status("sim-old").state == JobState.CANCELLED
    assert driver.usage("sim-old").elapsed_s == driver.usage(ref).elapsed_s - 1


def test_create_and_status_answers_what_create_then_status_would(make_sim, clock) -> None:
    """The provision step's create + status in one call: a job this call stored gets the status computed from the
    job it stored; a key's earlier job is read back."""
    driver = make_sim(boot_latency_s=5)
    ref, status = driver.create_and_status(spec("k1"))
    assert ref.startswith("sim-")
    assert status == driver.status(ref)
    assert (status.job_ref, status.state) == (ref, JobState.PENDING)
    clock.advance(6)
    again_ref, again = driver.create_and_status(spec("k1"))  # a redelivered provision: the same job, read back
    assert again_ref == ref
    assert again == driver.status(ref)
    assert again.state == JobState.RUNNING
    assert (driver.jobs_created(), driver.create_calls()) == (1, 2)
    quick = make_sim(boot_latency_s=0)
    now_ref, now = quick.create_and_status(spec("k2"))
    assert now.state == JobState.RUNNING and now == quick.status(now_ref)
