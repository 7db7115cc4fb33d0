"""Reading what Slurm's commands print: job states, exit codes, TRES lists, times. Pure functions, no I/O.

Text output (`scontrol show job -o`, `sacct -P`, the jobcomp/filetxt log) rather than `--json`: the text
formats are the same from Slurm 20 to 24, while the JSON schemas change with each OpenAPI plugin version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from workers.drivers.base import JobState

# Every state `squeue`/`scontrol`/`sacct` can print (slurm.h job_state_string + sacct's "CANCELLED by <uid>").
STATE_MAP: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,      # nodes booting for the job
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,       # processes ended, epilog still running: the final state follows
    "SUSPENDED": JobState.RUNNING,        # holds its allocation
    "STOPPED": JobState.RUNNING,          # SIGSTOPped, holds its allocation
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "REVOKED": JobState.LOST,             # a federation sibling ran the job instead
}

# Why a finished job ended, for JobStatus.message when the mapped state alone would hide it.
STATE_NOTES: dict[str, str] = {
    "NODE_FAIL": "a node allocated to the job failed",
    "BOOT_FAIL": "a node failed to boot for the job",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "PREEMPTED": "the job was preempted by the scheduler",
    "SPECIAL_EXIT": "the job ended with a special exit state",
    "DEADLINE": "the job reached its deadline",
    "SUSPENDED": "the job is suspended",
    "STOPPED": "the job is stopped",
    "COMPLETING": "the job is completing",
    "CONFIGURING": "nodes are being configured for the job",
    "REVOKED": "the job was revoked (run by another cluster of the federation)",
}

# Pending reasons that no amount of waiting fixes (short of the site changing its configuration).
HOPELESS_REASONS = frozenset({
    "DependencyNeverSatisfied", "BadConstraints", "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit",
    "InvalidAccount", "InvalidQOS",
})


def map_state(raw: str) -> JobState:
    """A Slurm state word (any case; sacct's 'CANCELLED by 0' and squeue's trailing '+' allowed) to JobState."""
    word = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    try:
        return STATE_MAP[word]
    except KeyError:
        raise ValueError(f"unknown Slurm job state {raw!r}") from None


def base_state(raw: str) -> str:
    return raw.strip().split(" ", 1)[0].rstrip("+").upper()


def exit_code(raw: str | None) -> int | None:
    """Slurm's 'status:signal' to one number: the status, or 128 + the signal when a signal ended the job."""
    if not raw:
        return None
    match = re.fullmatch(r"(\d+):(\d+)", raw.strip())
    if not match:
        return None
    status, signal = int(match.group(1)), int(match.group(2))
    return 128 + signal if signal else status


def duration_s(raw: str) -> float:
    """'[D-]HH:MM:SS' or 'MM:SS' (scontrol RunTime, sacct Elapsed) to seconds."""
    text = raw.strip()
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def parse_time(raw: str | None) -> datetime | None:
    """Slurm's 'YYYY-MM-DDTHH:MM:SS' (cluster local time, naive); None for 'Unknown', 'None', 'N/A', ''."""
    if not raw:
        return None
    try:
        return datetime.strptime(raw.strip(), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def parse_tres(raw: str | None) -> dict[str, str]:
    """'billing=1,cpu=1,gres/gpu=1,mem=100M,node=1' to a dict (values kept as printed)."""
    if not raw or raw in ("(null)", "N/A"):
        return {}
    out: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key:
            out[key.strip()] = value.strip()
    return out


def gpus_in_tres(tres: dict[str, str], gres_name: str = "gpu") -> int:
    """Total accelerators in a TRES dict: 'gres/gpu', or the sum of typed 'gres/gpu:<type>' entries."""
    untyped = tres.get(f"gres/{gres_name}")
    if untyped is not None:
        return _int(untyped)
    prefix = f"gres/{gres_name}:"
    return sum(_int(v) for k, v in tres.items() if k.startswith(prefix))


def _int(text: str) -> int:
    match = re.match(r"\d+", text)
    return int(match.group(0)) if match else 0


def parse_key_values(line: str) -> dict[str, str]:
    """One line of `scontrol show job -o` or the jobcomp log: 'Key=value Key=value ...'.

    Values never contain spaces except in a few free-text keys (Comment, Command, WorkDir, Std*); each key's
    first occurrence wins, and a value runs until the next ' Key=' boundary.
    """
    out: dict[str, str] = {}
    pieces = re.split(r" (?=[A-Za-z][A-Za-z0-9_:/]*=)", line.strip())
    for piece in pieces:
        key, sep, value = piece.partition("=")
        if sep and key not in out:
            out[key] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What one source told us about a job, normalised."""

    job_id: str
    source: str                         # scontrol | sacct | jobcomp
    state: str                          # Slurm's state word, e.g. COMPLETED
    reason: str = ""
    exit_code: int | None = None
    elapsed_s: float = 0.0
    tres: dict[str, str] = field(default_factory=dict)
    nodes: int = 0
    submit: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def job_state(self) -> JobState:
        return map_state(self.state)


def record_from_scontrol(line: str) -> JobRecord:
    kv = parse_key_values(line)
    state = kv.get("JobState", "")
    finished = map_state(state).finished if state else False
    return JobRecord(job_id=kv.get("JobId", ""), source="scontrol", state=state, reason=kv.get("Reason", ""),
                     exit_code=exit_code(kv.get("ExitCode")) if finished else None,
                     elapsed_s=duration_s(kv["RunTime"]) if kv.get("RunTime") else 0.0,
                     tres=parse_tres(kv.get("TRES") or kv.get("AllocTRES")), nodes=_int(kv.get("NumNodes", "0")),
                     submit=parse_time(kv.get("SubmitTime")), start=parse_time(kv.get("StartTime")),
                     end=parse_time(kv.get("EndTime")))


SACCT_FIELDS = ("JobID", "State", "ExitCode", "ElapsedRaw", "AllocTRES", "NNodes", "Submit", "Start", "End")


def record_from_sacct(line: str) -> JobRecord:
    """One `sacct -X -n -P -o <SACCT_FIELDS>` line."""
    values = line.rstrip("\n").split("|")
    if len(values) != len(SACCT_FIELDS):
        raise ValueError(f"sacct printed {len(values)} fields, expected {len(SACCT_FIELDS)}: {line!r}")
    row = dict(zip(SACCT_FIELDS, values, strict=True))
    state = row["State"]
    finished = map_state(state).finished
    return JobRecord(job_id=row["JobID"], source="sacct", state=base_state(state),
                     exit_code=exit_code(row["ExitCode"]) if finished else None,
                     elapsed_s=float(row["ElapsedRaw"] or 0), tres=parse_tres(row["AllocTRES"]),
                     nodes=_int(row["NNodes"]), submit=parse_time(row["Submit"]), start=parse_time(row["Start"]),
                     end=parse_time(row["End"]))


def record_from_jobcomp(line: str) -> JobRecord:
    """One line of the jobcomp/filetxt log (written when a job ends)."""
    kv = parse_key_values(line)
    start, end = parse_time(kv.get("StartTime")), parse_time(kv.get("EndTime"))
    elapsed = max(0.0, (end - start).total_seconds()) if start and end else 0.0
    return JobRecord(job_id=kv.get("JobId", ""), source="jobcomp", state=kv.get("JobState", ""),
                     exit_code=exit_code(kv.get("ExitCode")), elapsed_s=elapsed, tres=parse_tres(kv.get("Tres")),
                     nodes=_int(kv.get("NodeCnt", "0")), submit=parse_time(kv.get("SubmitTime")), start=start,
                     end=end)
