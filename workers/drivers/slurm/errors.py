"""A failed script run to the right DriverError: retry later, fail over (capacity gone), or give up."""

from __future__ import annotations

from workers.drivers.base import CapacityGoneError, TerminalDriverError, TransientDriverError
from workers.drivers.slurm.transport import EX_DATAERR, EX_TEMPFAIL, Result

# Slurm's messages when the controller or the database is busy or unreachable: worth retrying.
TRANSIENT_MESSAGES = (
    "Unable to contact slurm controller", "Socket timed out", "temporarily unable", "Zero Bytes were transmitted",
    "Connection refused", "Resource temporarily unavailable", "Communication connection failure",
    "Transport endpoint is not connected", "Slurm backup controller in standby mode", "Job submit/allocate failed",
)

# sbatch's refusals that mean "this partition cannot run this job (now)": fail over to another offer.
CAPACITY_MESSAGES = (
    "Requested node configuration is not available", "Requested partition configuration not available",
    "Node count specification invalid", "Partition is not available", "invalid partition specified",
    "Requested time limit is invalid", "More processors requested than permitted",
    "Memory required by task is not available", "Job violates accounting/QOS policy", "Job exceeds",
    "QOSMax", "AssocMax", "Invalid generic resource", "Invalid Trackable RESource",
    "Requested reservation is invalid", "Access denied to requested reservation",
)


def raise_for(result: Result, *, action: str, where: str) -> None:
    """Raise the error a non-zero run means; return when the run succeeded."""
    if result.returncode == 0:
        return
    message = " ".join(line.strip() for line in result.stderr.strip().splitlines() if line.strip())
    message = message or f"exit status {result.returncode}, no message"
    text = f"could not {action} on {where}: {message}"
    if result.returncode == EX_TEMPFAIL or any(m.lower() in message.lower() for m in TRANSIENT_MESSAGES):
        raise TransientDriverError(text, code="slurm_unavailable")
    if result.returncode == EX_DATAERR:
        raise TerminalDriverError(text, code="bad_job_ref")
    if any(m.lower() in message.lower() for m in CAPACITY_MESSAGES):
        raise CapacityGoneError(text, code="capacity_gone")
    if "Batch job submission failed" in message:
        raise TerminalDriverError(text, code="rejected")
    raise TerminalDriverError(text, code="slurm_error")
