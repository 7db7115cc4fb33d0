"""The `slurm` driver: an order's job as a Slurm batch job, driven through Slurm's commands.

Commands (sbatch, squeue, scontrol, sacct, scancel) run on this machine or on a login host over ssh, not through
slurmrestd: they are what every Slurm site already gives its users, they behave the same from Slurm 20 to 24,
and they need no extra daemon, plugin set or JWT setup (slurmrestd refuses to run as root, needs specific
plugins, and its API version changes with each Slurm release). See docs/slurm.md.

Stateless: everything the driver knows about a job is asked from Slurm each time (job ref = Slurm job id).
"""

from __future__ import annotations

import base64
import contextlib
import math
from datetime import datetime
from typing import Any

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
from workers.drivers.slurm import scripts
from workers.drivers.slurm.config import SlurmConfig
from workers.drivers.slurm.errors import raise_for
from workers.drivers.slurm.jobscript import batch_script, job_name, sbatch_args
from workers.drivers.slurm.parsing import (
    HOPELESS_REASONS,
    STATE_NOTES,
    JobRecord,
    gpus_in_tres,
    parse_time,
    record_from_jobcomp,
    record_from_sacct,
    record_from_scontrol,
)
from workers.drivers.slurm.transport import Transport


class Inspection:
    """What one `inspect` run printed: cluster time, each source's record, and an optional log chunk."""

    def __init__(self, job_ref: str, raw: bytes):
        self.job_ref = job_ref
        self.now: datetime | None = None
        self.records: dict[str, JobRecord] = {}
        self.accounting_off = False
        self.log_size: int | None = None
        self.log_bytes = b""
        rest = raw
        while rest:
            line, sep, after = rest.partition(b"\n")
            tag, _, value = line.decode("utf-8", errors="replace").partition(" ")
            if tag == "log":
                self.log_size = int(value)
                self.log_bytes = after
                break
            rest = after if sep else b""
            if tag == "now":
                self.now = parse_time(value)
            elif tag == "sacct-off":
                self.accounting_off = True
            elif tag in _READERS:
                try:
                    self.records[tag] = _READERS[tag](value)
                except ValueError as exc:
                    raise TransientDriverError(f"unreadable {tag} output for job {job_ref}: {exc}",
                                               code="slurm_output") from None

    @property
    def live(self) -> JobRecord | None:
        """The best record of the job's state: slurmctld's while it holds the job, else accounting, else jobcomp."""
        for source in ("scontrol", "sacct", "jobcomp"):
            if source in self.records:
                return self.records[source]
        return None


_READERS = {"scontrol": record_from_scontrol, "sacct": record_from_sacct, "jobcomp": record_from_jobcomp}


@register_driver("slurm")
class SlurmDriver:
    name = "slurm"
    simulated = False

    def __init__(self, **config: Any):
        self.config = SlurmConfig.from_kwargs(config)
        self.transport = Transport(login_host=self.config.login_host, ssh_command=self.config.ssh_command,
                                   ssh_options=self.config.ssh_options)

    # --- the Driver contract ------------------------------------------------------------------------------

    def create(self, spec: JobSpec, *, timeout_s: float = 30.0) -> str:
        options = self.config.options_for(spec.offer_external_id, spec.options)
        script = batch_script(spec)
        args = sbatch_args(spec, options, work_dir=self.config.work_dir, extra=self.config.sbatch_args)
        lock_wait = max(1, math.floor(timeout_s / 2))
        result = self.transport.run(scripts.CREATE, [
            job_name(spec.idempotency_key), f"{self.config.work_dir}/.keys", str(lock_wait), self._accounting_arg,
            base64.b64encode(script.encode()).decode(), *args,
        ], timeout_s=timeout_s)
        raise_for(result, action="submit the job", where=self.transport.where)
        words = result.text.split()
        if len(words) != 2 or words[0] not in ("existing", "submitted") or not words[1].isdigit():
            raise TransientDriverError(f"unexpected answer from the submit script: {result.text.strip()!r}",
                                       code="slurm_output")
        return words[1]

    def status(self, job_ref: str, *, timeout_s: float = 10.0) -> JobStatus:
        inspection = self._inspect(job_ref, timeout_s=timeout_s)
        record = inspection.live
        if record is None:
            return JobStatus(job_ref, JobState.LOST, message=f"Slurm does not know job {job_ref}")
        state = record.job_state
        if state is JobState.PENDING:
            self._check_pending(job_ref, record, inspection.now, timeout_s=timeout_s)
        message = STATE_NOTES.get(record.state, "")
        if state is JobState.PENDING and record.reason and record.reason != "None":
            message = f"pending: {record.reason}"
        return JobStatus(job_ref, state, exit_code=record.exit_code if state.finished else None, message=message)

    def logs(self, job_ref: str, offset: int = 0, *, timeout_s: float = 10.0) -> LogChunk:
        if offset < 0:
            raise TerminalDriverError(f"log offset cannot be negative ({offset})", code="bad_offset")
        inspection = self._inspect(job_ref, timeout_s=timeout_s, log_offset=offset)
        record = inspection.live
        finished = record is None or record.job_state.finished
        if inspection.log_size is None or inspection.log_size < 0:
            return LogChunk("", offset, complete=finished)
        data = inspection.log_bytes
        at_end = offset + len(data) >= inspection.log_size
        if not (finished and at_end):
            data = _whole_characters(data)
        return LogChunk(data.decode("utf-8", errors="replace"), offset + len(data),
                        complete=finished and offset + len(data) >= inspection.log_size)

    def usage(self, job_ref: str, *, timeout_s: float = 10.0) -> Usage:
        inspection = self._inspect(job_ref, timeout_s=timeout_s, accounting=True)
        live = inspection.live
        if live is None:
            raise TerminalDriverError(f"Slurm does not know job {job_ref}", code="unknown_job")
        record = inspection.records.get("sacct")
        # Accounting (slurmdbd) is written asynchronously: while it lags behind slurmctld, use slurmctld's view.
        if record is None or (live.job_state.finished and not record.job_state.finished):
            record = live
        gpus = gpus_in_tres(record.tres, self.config.defaults.gres_name)
        return Usage(elapsed_s=record.elapsed_s, accelerator_s=gpus * record.elapsed_s,
                     exit_code=record.exit_code if record.job_state.finished else None,
                     details={"source": record.source, "state": record.state, "alloc_tres": record.tres,
                              "nodes": record.nodes, "accelerators": gpus,
                              "start": record.start.isoformat() if record.start else None,
                              "end": record.end.isoformat() if record.end else None})

    def terminate(self, job_ref: str, *, timeout_s: float = 30.0) -> None:
        result = self.transport.run(scripts.CANCEL, [job_ref], timeout_s=timeout_s)
        raise_for(result, action=f"cancel job {job_ref}", where=self.transport.where)

    # --- helpers ------------------------------------------------------------------------------------------

    @property
    def _accounting_arg(self) -> str:
        return {None: "auto", True: "1", False: "0"}[self.config.accounting]

    def _inspect(self, job_ref: str, *, timeout_s: float, log_offset: int | None = None,
                 accounting: bool = False) -> Inspection:
        """Ask Slurm about the job: slurmctld first; the accounting database too when `accounting` (usage), else
        only for a job slurmctld no longer holds (a sacct query costs ~10x a scontrol one)."""
        args = [job_ref, self._accounting_arg, "always" if accounting else "fallback", self.config.jobcomp_file or ""]
        if log_offset is not None:
            args += [f"{self.config.work_dir}/{job_ref}.out", str(log_offset), str(self.config.max_log_bytes)]
        result = self.transport.run(scripts.INSPECT, args, timeout_s=timeout_s)
        raise_for(result, action=f"read job {job_ref}", where=self.transport.where)
        return Inspection(job_ref, result.stdout)

    def _check_pending(self, job_ref: str, record: JobRecord, now: datetime | None, *, timeout_s: float) -> None:
        """A job that cannot start (hopeless reason, or pending past the limit) is cancelled: capacity gone."""
        if record.reason in HOPELESS_REASONS:
            why = f"job {job_ref} can never start ({record.reason})"
        else:
            limit = self.config.pending_limit_s
            if record.submit is None or now is None:
                return
            waited = (now - record.submit).total_seconds()
            if waited <= limit:
                return
            why = (f"job {job_ref} has been pending for {waited:.0f}s (limit {limit:g}s, reason "
                   f"{record.reason or 'none'})")
        # The caller fails over either way; if this cancel fails, its own terminate call repeats it.
        with contextlib.suppress(TransientDriverError):
            self.terminate(job_ref, timeout_s=timeout_s)
        raise CapacityGoneError(f"{why}; cancelled it", code="capacity_gone")


def _whole_characters(data: bytes) -> bytes:
    """Drop an incomplete UTF-8 sequence at the end (it is returned whole by the next call)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0b1100_0000 == 0b1000_0000:
            continue  # continuation byte: keep looking for the lead byte
        if byte & 0b1000_0000 == 0:
            return data  # ASCII: complete
        need = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4 if byte >> 3 == 0b11110 else 1
        return data if back >= need else data[:-back]
    return data

