"""The driver contract every provider integration implements. Pure Python: no Django imports.

Every call that has an effect at the provider carries an idempotency key derived from our ids
(e.g. "order:42:attempt:1"), so a redelivered Celery task never creates a second job: `create` with a key the
provider has already seen returns the existing job's reference.
Every call has a timeout (`timeout_s`); a hang surfaces as TransientDriverError.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class DriverError(Exception):
    code = "driver_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class TransientDriverError(DriverError):
    """Worth retrying with backoff: timeouts, connection errors, 5xx, 429."""

    code = "transient"


class TerminalDriverError(DriverError):
    """Retrying cannot help: bad request, auth refused, job spec rejected. Fails the attempt at once."""

    code = "terminal"


class CapacityGoneError(TerminalDriverError):
    """The provider no longer has the capacity (or the job stayed pending too long): fail over to the next offer."""

    code = "capacity_gone"


class JobState(enum.StrEnum):
    PENDING = "pending"        # accepted, not running yet (booting, queued in Slurm, ...)
    RUNNING = "running"
    SUCCEEDED = "succeeded"    # exited 0
    FAILED = "failed"          # exited non-zero, or the node failed
    CANCELLED = "cancelled"    # terminated on our request
    TIMEOUT = "timeout"        # hit the time limit
    LOST = "lost"              # the provider does not know the job (anymore)

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.LOST)


@dataclass(frozen=True, slots=True)
class JobSpec:
    order_id: int
    idempotency_key: str                 # unique per (order, attempt)
    offer_external_id: str
    nodes: int
    accelerators_per_node: int
    accelerator: str                     # canonical name
    command: str                         # shell command to run (or the image's entrypoint args)
    image: str = ""                      # container image reference, when the provider runs images
    env: dict[str, str] = field(default_factory=dict)
    time_limit_s: int = 3600
    vcpus: int = 0
    ram_gb: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # driver-specific (partition, gres type, ...)


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_ref: str
    state: JobState
    exit_code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class LogChunk:
    text: str
    next_offset: int
    complete: bool = False  # True once the job finished and every byte was returned


@dataclass(frozen=True, slots=True)
class Usage:
    elapsed_s: float
    accelerator_s: float = 0.0     # accelerator-seconds actually allocated (count x nodes x elapsed)
    exit_code: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Driver(Protocol):
    name: str
    simulated: bool

    def create(self, spec: JobSpec, *, timeout_s: float = 30.0) -> str:
        """Start the job; returns the provider's job reference. Same idempotency key -> same reference."""
        ...

    def status(self, job_ref: str, *, timeout_s: float = 10.0) -> JobStatus: ...

    def logs(self, job_ref: str, offset: int = 0, *, timeout_s: float = 10.0) -> LogChunk: ...

    def usage(self, job_ref: str, *, timeout_s: float = 10.0) -> Usage: ...

    def terminate(self, job_ref: str, *, timeout_s: float = 30.0) -> None:
        """Stop the job; terminating a finished or unknown job is a no-op."""
        ...
