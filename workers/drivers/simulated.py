"""The `simulated` driver: no machine behind it. For offers imported from price catalogs and for benchmarks.

Every job is a timeline decided once, at create, and stored in Redis, so several worker processes (and several
driver instances) see the same jobs and the same counters:

    created --boot_latency_s--> running --run_duration_s--> succeeded
                 |                  |--(run failure)------> failed (exit code 1)
                 |                  |--(preemption)-------> lost
                 |                  |--time_limit_s-------> timeout
                 '--(boot failure)-> failed               terminate / revoke_capacity at any point -> cancelled / lost

The state at any moment is computed from that timeline and the wall clock; terminate and capacity revocation only
record the moment they happened. Decisions (failures, jitter) come from `random.Random(f"{seed}:{key}")`, so a
seeded run is deterministic per idempotency key. Logs are synthetic lines generated from the same timeline.

Knobs (constructor keywords; overridable per namespace with `configure()` and per offer with `configure_offer()`,
both stored in Redis so worker processes pick them up):
  boot_latency_s, boot_jitter_s   time from create to running (plus a uniform jitter)
  run_duration_s                  time from running to success; None = run until terminated or the time limit
  failure_rate                    probability the job fails while booting (never reaches running)
  run_failure_rate                probability the job exits 1 halfway through its run
  preemption_rate                 probability the node is lost halfway through the run (state lost)
  capacity_loss_rate              probability create raises CapacityGoneError
  transient_error_rate            probability one create call raises TransientDriverError (drawn per call)
  call_latency_s                  every call sleeps this long; beyond the call's timeout it raises TransientDriverError
  seed                            None = not deterministic
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import redis

from workers.drivers.base import (
    CapacityGoneError,
    JobSpec,
    JobState,
    JobStatus,
    LogChunk,
    TerminalDriverError,
    TransientDriverError,
    Usage,
)
from workers.drivers.registry import register_driver

MAX_LOG_LINES = 600  # progress lines per job; the log stops growing after that

# What create reads first, with its call counters, as one command (a pipeline of six cost twice its CPU).
# KEYS: knobs, offer knobs hash, calls counter, calls per key hash, refs hash, revoked set.
# ARGV: offer external id, idempotency key. GET/HGET of nothing give false: a nil in the reply.
CREATE_READ_LUA = """
local namespace_knobs = redis.call('GET', KEYS[1])
local offer_knobs = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[3])
local calls = redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
local existing = redis.call('HGET', KEYS[5], ARGV[2])
local revoked = redis.call('SISMEMBER', KEYS[6], ARGV[1])
return {namespace_knobs, offer_knobs, calls, existing, revoked}
"""

# KEYS: refs hash, job hash, jobs counter, offer's job set. ARGV: idempotency key, job ref, job fields...
PUBLISH_LUA = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('INCR', KEYS[3])
redis.call('SADD', KEYS[4], ARGV[2])
return ARGV[2]
"""


@dataclass(frozen=True, slots=True)
class SimulatedKnobs:
    boot_latency_s: float = 2.0
    boot_jitter_s: float = 0.0
    run_duration_s: float | None = None
    failure_rate: float = 0.0
    run_failure_rate: float = 0.0
    preemption_rate: float = 0.0
    capacity_loss_rate: float = 0.0
    transient_error_rate: float = 0.0
    call_latency_s: float = 0.0
    seed: int | str | None = None

    def merged(self, overrides: dict[str, Any]) -> SimulatedKnobs:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TerminalDriverError(f"unknown simulated driver setting(s): {', '.join(unknown)}",
                                      code="bad_driver_config")
        knobs = replace(self, **overrides)
        knobs.check()
        return knobs

    def check(self) -> None:
        for name in ("failure_rate", "run_failure_rate", "preemption_rate", "capacity_loss_rate",
                     "transient_error_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise TerminalDriverError(f"{name} must be within 0..1, got {value}", code="bad_driver_config")
        for name in ("boot_latency_s", "boot_jitter_s", "call_latency_s"):
            if getattr(self, name) < 0:
                raise TerminalDriverError(f"{name} must be >= 0", code="bad_driver_config")
        if self.run_duration_s is not None and self.run_duration_s < 0:
            raise TerminalDriverError("run_duration_s must be >= 0 or None", code="bad_driver_config")


def default_redis_url() -> str:
    """settings.REDIS_URL when Django is configured, else $REDIS_URL, else the local default server."""
    try:
        from django.conf import settings

        if settings.configured:
            return settings.REDIS_URL
    except ImportError:  # pragma: no cover - Django is always installed in this project
        pass
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@register_driver("simulated")
class SimulatedDriver:
    name = "simulated"
    simulated = True

    def __init__(self, *, redis_url: str | None = None, client: redis.Redis | None = None,
                 namespace: str | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, **knobs: Any) -> None:
        self.namespace = namespace or os.environ.get("SIMULATED_DRIVER_NAMESPACE", "sim")
        self._r = client or redis.Redis.from_url(redis_url or default_redis_url(), decode_responses=True,
                                                 socket_timeout=5, socket_connect_timeout=5)
        self._clock = clock
        self._sleep = sleep
        self.knobs = SimulatedKnobs().merged(knobs)
        self._publish_script = self._r.register_script(PUBLISH_LUA)
        self._create_read_script = self._r.register_script(CREATE_READ_LUA)

    # ------------------------------------------------------------------------------------ Redis layout
    def _k(self, *parts: str) -> str:
        return ":".join(("simdrv", self.namespace, *parts))

    def _redis(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except redis.RedisError as exc:
            raise TransientDriverError(f"simulated driver state store unavailable: {exc}") from exc

    # ------------------------------------------------------------------------------------ settings
    def configure(self, **knobs: Any) -> None:
        """Namespace-wide overrides, seen by every driver instance of this namespace (any process)."""
        SimulatedKnobs().merged(knobs)
        self._redis(lambda: self._r.set(self._k("knobs"), json.dumps(knobs)))

    def configure_offer(self, offer_external_id: str, **knobs: Any) -> None:
        """Overrides for one offer, e.g. configure_offer("x", failure_rate=1.0) to make its provisioning fail."""
        SimulatedKnobs().merged(knobs)
        self._redis(lambda: self._r.hset(self._k("offer_knobs"), offer_external_id, json.dumps(knobs)))

    def effective_knobs(self, offer_external_id: str = "") -> SimulatedKnobs:
        pipe = self._r.pipeline(transaction=False)
        pipe.get(self._k("knobs"))
        pipe.hget(self._k("offer_knobs"), offer_external_id)
        return self._knobs(*self._redis(pipe.execute))

    def _knobs(self, namespace_knobs: str | None, offer_knobs: str | None) -> SimulatedKnobs:
        knobs = self.knobs.merged(json.loads(namespace_knobs)) if namespace_knobs else self.knobs
        return knobs.merged(json.loads(offer_knobs)) if offer_knobs else knobs

    # ------------------------------------------------------------------------------------ capacity
    def revoke_capacity(self, offer_external_id: str) -> int:
        """The provider takes the offer's capacity back: later creates raise CapacityGoneError, jobs running on it
        are lost from now on. Returns how many unfinished jobs were lost."""
        now = self._clock()
        self._redis(lambda: self._r.sadd(self._k("revoked"), offer_external_id))
        lost = 0
        for ref in self._redis(lambda: self._r.smembers(self._k("offer_jobs", offer_external_id))):
            job = self._job(ref)
            if job is not None and not _timeline(job, now).state.finished:
                lost += self._redis(lambda ref=ref: self._r.hsetnx(self._k("job", ref), "lost_at", repr(now)))
        return lost

    def restore_capacity(self, offer_external_id: str) -> None:
        self._redis(lambda: self._r.srem(self._k("revoked"), offer_external_id))

    # ------------------------------------------------------------------------------------ counters
    def create_calls(self, idempotency_key: str | None = None) -> int:
        """How many times create() was called (all keys, or one key), including repeats and failed calls."""
        if idempotency_key is None:
            return int(self._redis(lambda: self._r.get(self._k("create_calls_total"))) or 0)
        return int(self._redis(lambda: self._r.hget(self._k("create_calls"), idempotency_key)) or 0)

    def jobs_created(self, idempotency_key: str | None = None) -> int:
        """How many distinct jobs were started (all keys, or 0/1 for one key): "the driver saw one create"."""
        if idempotency_key is None:
            return int(self._redis(lambda: self._r.get(self._k("jobs_total"))) or 0)
        return int(self._redis(lambda: self._r.hexists(self._k("refs"), idempotency_key)))

    def job_ref_for(self, idempotency_key: str) -> str | None:
        return self._redis(lambda: self._r.hget(self._k("refs"), idempotency_key))

    def reset(self) -> int:
        """Delete every key of this namespace (tests, benchmarks). Returns how many keys were deleted."""
        keys = list(self._redis(lambda: list(self._r.scan_iter(match=self._k("*"), count=500))))
        return int(self._redis(lambda: self._r.delete(*keys))) if keys else 0

    # ------------------------------------------------------------------------------------ the contract
    def create(self, spec: JobSpec, *, timeout_s: float = 30.0) -> str:
        return self._create(spec, timeout_s)[0]

    def create_and_status(self, spec: JobSpec, *, timeout_s: float = 30.0) -> tuple[str, JobStatus]:
        """create(), then status() of the job it returns, as the provision step asks them (the status call's
        latency included): for a job this call stored, the status is computed from the job it just stored, which
        is what status() would read back (the same timeline, at the same clock); for a job stored before (a repeated
        key) or by a racing create, status() reads it."""
        ref, job, namespace_knobs = self._create(spec, timeout_s)
        if job is None:
            return ref, self.status(ref, timeout_s=timeout_s)
        self._latency(self._knobs(namespace_knobs, None), timeout_s, "status")
        return ref, _status(job, self._clock())

    def _create(self, spec: JobSpec, timeout_s: float) -> tuple[str, Job | None, str | None]:
        """(job ref, the job when this call stored it, the namespace's knobs as read)."""
        # One command: settings, count the call, the key's job if any, whether the offer was revoked.
        keys = [self._k("knobs"), self._k("offer_knobs"), self._k("create_calls_total"), self._k("create_calls"),
                self._k("refs"), self._k("revoked")]
        namespace_knobs, offer_knobs, calls, existing, revoked = self._redis(
            lambda: self._create_read_script(keys=keys, args=[spec.offer_external_id, spec.idempotency_key]))
        knobs = self._knobs(namespace_knobs, offer_knobs)
        self._latency(knobs, timeout_s, "create")
        if existing is not None:
            return existing, None, namespace_knobs
        if _rng(knobs.seed, spec.idempotency_key, f"call{calls}").random() < knobs.transient_error_rate:
            raise TransientDriverError("simulated transient error on create", code="simulated_transient")
        if revoked:
            raise CapacityGoneError(f"simulated: offer {spec.offer_external_id} has no capacity left")
        rng = _rng(knobs.seed, spec.idempotency_key)
        draws = [rng.random() for _ in range(6)]
        if draws[0] < knobs.capacity_loss_rate:
            raise CapacityGoneError(f"simulated: capacity of offer {spec.offer_external_id} is gone")
        outcome, fail_after = "succeed", None
        if draws[1] < knobs.failure_rate:
            outcome = "boot_fail"
        elif draws[2] < knobs.run_failure_rate:
            outcome, fail_after = "run_fail", 0.5
        elif draws[3] < knobs.preemption_rate:
            outcome, fail_after = "preempt", 0.5
        job = Job(ref=f"sim-{uuid.uuid4().hex[:16]}", key=spec.idempotency_key, offer=spec.offer_external_id,
                  command=spec.command, nodes=spec.nodes, per_node=spec.accelerators_per_node,
                  accelerator=spec.accelerator, created_at=self._clock(),
                  boot_s=knobs.boot_latency_s + draws[4] * knobs.boot_jitter_s, run_s=knobs.run_duration_s,
                  time_limit_s=float(spec.time_limit_s), outcome=outcome, fail_after=fail_after)
        stored = self._redis(lambda: self._publish(job))
        return stored, (job if stored == job.ref else None), namespace_knobs

    def status(self, job_ref: str, *, timeout_s: float = 10.0) -> JobStatus:
        job = self._call(job_ref, timeout_s, "status")
        if job is None:
            return JobStatus(job_ref=job_ref, state=JobState.LOST, message="simulated: unknown job")
        return _status(job, self._clock())

    def logs(self, job_ref: str, offset: int = 0, *, timeout_s: float = 10.0) -> LogChunk:
        job = self._require(self._call(job_ref, timeout_s, "logs"), job_ref)
        point = _timeline(job, self._clock())
        text = _log_text(job, point)
        offset = max(0, min(offset, len(text)))
        return LogChunk(text=text[offset:], next_offset=len(text), complete=point.state.finished)

    def usage(self, job_ref: str, *, timeout_s: float = 10.0) -> Usage:
        job = self._require(self._call(job_ref, timeout_s, "usage"), job_ref)
        point = _timeline(job, self._clock())
        elapsed = round(point.running_s, 3)
        return Usage(elapsed_s=elapsed, accelerator_s=round(elapsed * job.nodes * job.per_node, 3),
                     exit_code=point.exit_code, details={"simulated": True, "boot_s": round(job.boot_s, 3)})

    def terminate(self, job_ref: str, *, timeout_s: float = 30.0) -> None:
        # An unknown job: no-op. A finished job keeps its end (the earliest end wins).
        if self._call(job_ref, timeout_s, "terminate") is not None:
            now = self._clock()
            self._redis(lambda: self._r.hsetnx(self._k("job", job_ref), "terminated_at", repr(now)))

    # ------------------------------------------------------------------------------------ internals
    def _latency(self, knobs: SimulatedKnobs, timeout_s: float, call: str) -> None:
        if knobs.call_latency_s <= 0:
            return
        if knobs.call_latency_s > timeout_s:
            self._sleep(timeout_s)
            raise TransientDriverError(f"simulated {call} timed out after {timeout_s:g}s", code="timeout")
        self._sleep(knobs.call_latency_s)

    def _call(self, job_ref: str, timeout_s: float, call: str) -> Job | None:
        """One round trip for the namespace settings and the job; then the simulated call latency."""
        pipe = self._r.pipeline(transaction=False)
        pipe.get(self._k("knobs"))
        pipe.hgetall(self._k("job", job_ref))
        namespace_knobs, raw = self._redis(pipe.execute)
        self._latency(self._knobs(namespace_knobs, None), timeout_s, call)
        return Job.from_redis(raw) if raw else None

    def _publish(self, job: Job) -> str:
        """Claim the key and store the job atomically (a Lua script): of racing creates exactly one wins."""
        fields = [item for pair in job.to_redis().items() for item in pair]
        keys = [self._k("refs"), self._k("job", job.ref), self._k("jobs_total"), self._k("offer_jobs", job.offer)]
        return self._publish_script(keys=keys, args=[job.key, job.ref, *fields])

    def _job(self, ref: str) -> Job | None:
        raw = self._redis(lambda: self._r.hgetall(self._k("job", ref)))
        return Job.from_redis(raw) if raw else None

    @staticmethod
    def _require(job: Job | None, ref: str) -> Job:
        if job is None:
            raise TerminalDriverError(f"simulated: unknown job {ref}", code="job_unknown")
        return job


@dataclass(frozen=True, slots=True)
class Job:
    ref: str
    key: str
    offer: str
    command: str
    nodes: int
    per_node: int
    accelerator: str
    created_at: float
    boot_s: float
    run_s: float | None
    time_limit_s: float
    outcome: str                 # succeed | boot_fail | run_fail | preempt
    fail_after: float | None     # fraction of the run (or of the time limit) after which run_fail/preempt happen
    terminated_at: float | None = None
    lost_at: float | None = None

    def to_redis(self) -> dict[str, str]:
        """The hash stored for the job: every field but the stamps as one JSON object (field "job": one value to
        send and parse instead of 13, on every create and every status read); a stamp is a field of its own, absent
        until set, so that HSETNX records only the first one. (Field by field: dataclasses.asdict deep-copies each
        value first, which took most of this on every create.)"""
        stored = {"job": json.dumps({name: getattr(self, name) for name in JOB_SPEC_FIELDS})}
        stored.update((stamp, repr(getattr(self, stamp))) for stamp in JOB_STAMPS if getattr(self, stamp) is not None)
        return stored

    @classmethod
    def from_redis(cls, raw: dict[str, str]) -> Job:
        if "job" in raw:
            values = json.loads(raw["job"])
        else:  # stored field by field (before the "job" field): every field as JSON
            values = {k: json.loads(v) for k, v in raw.items() if k not in JOB_STAMPS}
        for stamp in JOB_STAMPS:  # written with repr() by terminate/revoke
            if stamp in raw:
                values[stamp] = float(raw[stamp])
        return cls(**values)


JOB_STAMPS = ("terminated_at", "lost_at")
JOB_SPEC_FIELDS = tuple(f.name for f in fields(Job) if f.name not in JOB_STAMPS)


@dataclass(frozen=True, slots=True)
class Point:
    state: JobState
    running_s: float
    exit_code: int | None = None
    message: str = ""
    ended_at: float | None = None


def _timeline(job: Job, now: float) -> Point:
    """The job's state at `now`: the earliest end event at or before now, else pending/running."""
    boot_end = job.created_at + job.boot_s
    ends: list[tuple[float, JobState, int | None, str]] = []
    if job.outcome == "boot_fail":
        ends.append((boot_end, JobState.FAILED, None, "simulated: provisioning failed while booting"))
    else:
        length = job.run_s if job.run_s is not None else job.time_limit_s
        if job.outcome == "run_fail":
            ends.append((boot_end + length * (job.fail_after or 0.5), JobState.FAILED, 1,
                         "simulated: the job exited with code 1"))
        elif job.outcome == "preempt":
            ends.append((boot_end + length * (job.fail_after or 0.5), JobState.LOST, None,
                         "simulated: the node was preempted"))
        elif job.run_s is not None:
            ends.append((boot_end + job.run_s, JobState.SUCCEEDED, 0, "simulated: the job exited with code 0"))
        ends.append((boot_end + job.time_limit_s, JobState.TIMEOUT, None,
                     f"simulated: time limit of {job.time_limit_s:g}s reached"))
    if job.terminated_at is not None:
        ends.append((job.terminated_at, JobState.CANCELLED, None, "simulated: terminated on request"))
    if job.lost_at is not None:
        ends.append((job.lost_at, JobState.LOST, None, "simulated: the provider reclaimed the capacity"))
    end = min(ends, key=lambda e: e[0])
    if end[0] <= now:
        at, state, code, message = end
        return Point(state=state, running_s=max(0.0, at - boot_end), exit_code=code, message=message, ended_at=at)
    if now < boot_end:
        return Point(state=JobState.PENDING, running_s=0.0, message="simulated: booting")
    return Point(state=JobState.RUNNING, running_s=now - boot_end, message="simulated: running")


def _status(job: Job, now: float) -> JobStatus:
    point = _timeline(job, now)
    return JobStatus(job_ref=job.ref, state=point.state, exit_code=point.exit_code, message=point.message)


def _log_text(job: Job, point: Point) -> str:
    lines = [f"[simulated] job {job.ref} accepted: {job.nodes} node(s) x {job.per_node} {job.accelerator} "
             f"on offer {job.offer}",
             f"[simulated] booting (boot latency {job.boot_s:.1f}s)"]
    booted = point.state == JobState.RUNNING or (point.ended_at is not None
                                                 and point.ended_at >= job.created_at + job.boot_s
                                                 and job.outcome != "boot_fail")
    if booted:
        lines.append(f"[simulated] running: {job.command}")
        steps = min(MAX_LOG_LINES, math.floor(point.running_s))
        lines.extend(f"[simulated] t+{k}s: step {k} ok" for k in range(1, steps + 1))
    if point.state.finished:
        code = "" if point.exit_code is None else f" (exit code {point.exit_code})"
        lines.append(f"[simulated] finished: {point.state.value}{code}: {point.message}")
    return "".join(line + "\n" for line in lines)


def _rng(seed: int | str | None, *parts: str) -> random.Random:
    if seed is None:
        return random.Random()
    return random.Random(":".join((str(seed), *parts)))
