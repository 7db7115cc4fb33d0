"""From a JobSpec to a batch script and the sbatch arguments that reserve what the order bought."""

from __future__ import annotations

import hashlib
import math
import re
import shlex

from workers.drivers.base import JobSpec, TerminalDriverError
from workers.drivers.slurm.config import JobOptions

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def job_name(idempotency_key: str) -> str:
    """The Slurm job name that carries the idempotency key: readable prefix + a hash of the whole key.

    Slurm names are free text, but the name is also a file name in the idempotency records and a squeue/sacct
    filter, so it is restricted to [A-Za-z0-9._-]; the hash keeps distinct keys distinct after that.
    """
    if not idempotency_key:
        raise TerminalDriverError("the job spec has no idempotency key", code="bad_spec")
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
    return f"brk-{_UNSAFE.sub('_', idempotency_key)[:60]}-{digest}"


def time_limit_minutes(seconds: int) -> int:
    """Slurm time limits are whole minutes; round up so the job gets at least what was bought."""
    return max(1, math.ceil(seconds / 60))


def batch_script(spec: JobSpec) -> str:
    if not spec.command.strip():
        raise TerminalDriverError("the job spec has no command", code="bad_spec")
    if "\0" in spec.command:
        raise TerminalDriverError("the command contains a NUL byte", code="bad_spec")
    lines = ["#!/bin/bash",
             f"# Submitted by the compute broker: order {spec.order_id}, key {_UNSAFE.sub('_', spec.idempotency_key)}"]
    for name, value in sorted(spec.env.items()):
        if not _ENV_NAME.fullmatch(name):
            raise TerminalDriverError(f"environment variable name {name!r} is not valid", code="bad_spec")
        lines.append(f"export {name}={shlex.quote(str(value))}")
    if spec.image:
        lines.append(f"export BROKER_IMAGE={shlex.quote(spec.image)}")
    lines.append(spec.command)
    return "\n".join(lines) + "\n"


def sbatch_args(spec: JobSpec, options: JobOptions, *, work_dir: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Arguments for `sbatch --parsable`; the script itself goes on stdin."""
    if spec.nodes < 1:
        raise TerminalDriverError(f"nodes must be at least 1, not {spec.nodes}", code="bad_spec")
    if spec.accelerators_per_node < 0 or spec.vcpus < 0 or spec.ram_gb < 0:
        raise TerminalDriverError("accelerators, vCPUs and RAM cannot be negative", code="bad_spec")
    args = [
        f"--job-name={job_name(spec.idempotency_key)}",
        f"--comment={spec.idempotency_key}",
        f"--output={work_dir}/%j.out",
        f"--chdir={work_dir}",
        "--export=NONE",        # the user's login environment plus the script's exports; never the broker's
        "--no-requeue",         # a node failure ends the job (NODE_FAIL) instead of silently running it again
        f"--nodes={spec.nodes}",
        "--ntasks-per-node=1",
        f"--time={time_limit_minutes(spec.time_limit_s)}",
    ]
    if spec.vcpus:
        args.append(f"--cpus-per-task={spec.vcpus}")
    if spec.ram_gb:
        args.append(f"--mem={math.ceil(spec.ram_gb * 1024)}M")
    if spec.accelerators_per_node:
        kind = f"{options.gres_name}:{options.gres_type}" if options.gres_type else options.gres_name
        args.append(f"--gres={kind}:{spec.accelerators_per_node}")
    for flag, value in (("partition", options.partition), ("account", options.account), ("qos", options.qos),
                        ("constraint", options.constraint), ("begin", options.begin)):
        if value:
            args.append(f"--{flag}={value}")
    if options.exclusive:
        args.append("--exclusive")
    if options.hold:
        args.append("--hold")
    args.extend(extra)
    return args
