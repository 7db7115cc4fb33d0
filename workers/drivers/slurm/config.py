"""The Slurm driver's configuration and per-job options, validated with messages naming the key.

Configuration (get_driver("slurm", **config); in the broker, BROKER_DRIVER_CONFIG='{"slurm": {...}}'):
  login_host       None = Slurm's commands run on this machine; else they run over `ssh <login_host>`
  ssh_options      extra ssh arguments (default: BatchMode=yes, ConnectTimeout=10)
  work_dir         absolute directory, on a file system the compute nodes share with the login host: job
                   output files (<job id>.out) and the idempotency records (.keys/)
  accounting       "auto" (use sacct when it answers), true (require it), false (never; use scontrol/jobcomp)
  jobcomp_file     the jobcomp/filetxt log (JobCompLoc), read for jobs slurmctld has already forgotten
  pending_limit_s  a job pending longer than this (default 900) is capacity gone: status() cancels it and
                   raises CapacityGoneError
  max_log_bytes    the largest log chunk one call returns
  sbatch_args      extra sbatch arguments for every job, e.g. ["--reservation=broker"]
  offers           {offer external id: {option: value}}: per-offer job options (a partition per offer)
  plus any job option below as the default for every job.
Job options (config defaults < config["offers"][external id] < JobSpec.options):
  partition, account, qos, constraint, gres_name ("gpu"), gres_type (e.g. "a100"; `--gres=gpu:a100:<n>`),
  exclusive (whole nodes), hold (submit held), begin (sbatch --begin).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from workers.drivers.base import TerminalDriverError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_CONSTRAINT = re.compile(r"[A-Za-z0-9_.\-&|!\[\]*:,()]{1,200}")
_BEGIN = re.compile(r"[A-Za-z0-9:+\-]{1,40}")
_HOST = re.compile(r"[A-Za-z0-9_.@\-]{1,200}")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError("must be a Slurm name: letters, digits, '_', '.', '-' (at most 64)")
    return value


def _constraint(value: Any) -> str:
    if not isinstance(value, str) or not _CONSTRAINT.fullmatch(value):
        raise ValueError("must be a Slurm feature expression (letters, digits, _.-&|![]*:,())")
    return value


def _begin(value: Any) -> str:
    if not isinstance(value, str) or not _BEGIN.fullmatch(value):
        raise ValueError("must be an sbatch --begin time such as 'now+1hour' or '2030-01-01T10:00:00'")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return float(value)


@dataclass(frozen=True, slots=True)
class JobOptions:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gres_name: str = "gpu"
    gres_type: str | None = None
    exclusive: bool = False
    hold: bool = False
    begin: str | None = None


OPTION_CHECKS: dict[str, Callable[[Any], Any]] = {
    "partition": _name, "account": _name, "qos": _name, "constraint": _constraint, "gres_name": _name,
    "gres_type": _name, "exclusive": _flag, "hold": _flag, "begin": _begin,
}


def validate_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the valid options, {key: [message]}) — for an API that lets providers set per-offer Slurm options."""
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, value in options.items():
        check = OPTION_CHECKS.get(key)
        if check is None:
            errors[key] = [f"unknown Slurm option; valid: {', '.join(OPTION_CHECKS)}"]
            continue
        if value is None and key not in ("exclusive", "hold", "gres_name"):
            clean[key] = None
            continue
        try:
            clean[key] = check(value)
        except ValueError as exc:
            errors[key] = [str(exc)]
    return clean, errors


def merge_options(base: JobOptions, overrides: Mapping[str, Any], *, where: str) -> JobOptions:
    clean, errors = validate_options(overrides)
    if errors:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items()))
        raise TerminalDriverError(f"invalid Slurm job options in {where}: {detail}", code="bad_options")
    return replace(base, **clean)


@dataclass(frozen=True, slots=True)
class SlurmConfig:
    login_host: str | None = None
    ssh_options: tuple[str, ...] = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
    ssh_command: tuple[str, ...] = ("ssh",)
    work_dir: str = "/var/tmp/broker-slurm"
    accounting: bool | None = None  # None = auto
    jobcomp_file: str | None = None
    pending_limit_s: float = 900.0
    max_log_bytes: int = 65536
    sbatch_args: tuple[str, ...] = ()
    offers: dict[str, dict[str, Any]] | None = None
    defaults: JobOptions = JobOptions()

    @classmethod
    def from_kwargs(cls, config: Mapping[str, Any]) -> SlurmConfig:
        """Build and check a configuration; a bad key or value is a TerminalDriverError naming it."""
        own = {f.name for f in fields(cls)} - {"defaults"}
        unknown = sorted(set(config) - own - set(OPTION_CHECKS))
        if unknown:
            raise TerminalDriverError(
                f"unknown Slurm driver setting(s) {', '.join(unknown)}; valid: "
                f"{', '.join(sorted(own | set(OPTION_CHECKS)))}", code="bad_config")
        values: dict[str, Any] = {}
        try:
            for key in own & set(config):
                values[key] = _CONFIG_CHECKS[key](config[key])
        except ValueError as exc:
            raise TerminalDriverError(f"Slurm driver setting {key}: {exc}", code="bad_config") from None
        defaults = merge_options(JobOptions(), {k: v for k, v in config.items() if k in OPTION_CHECKS},
                                 where="the driver configuration")
        offers = values.get("offers") or {}
        for external_id, options in offers.items():
            merge_options(defaults, options, where=f"offers[{external_id!r}]")
        return cls(**values, defaults=defaults)

    def options_for(self, offer_external_id: str, spec_options: Mapping[str, Any]) -> JobOptions:
        options = self.defaults
        per_offer = (self.offers or {}).get(offer_external_id)
        if per_offer:
            options = merge_options(options, per_offer, where=f"offers[{offer_external_id!r}]")
        if spec_options:
            options = merge_options(options, spec_options, where="the job's options")
        return options


def _host(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _HOST.fullmatch(value) or value.startswith("-"):
        raise ValueError("must be a host name, user@host, or an ssh config alias")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _abs_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        raise ValueError("must be an absolute path")
    return value.rstrip("/") or "/"


def _optional_path(value: Any) -> str | None:
    return None if value in (None, "") else _abs_path(value)


def _accounting(value: Any) -> bool | None:
    if value is None or value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ValueError("must be \"auto\", true or false")


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a whole number, 1 or more")
    return value


def _offers(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise ValueError("must be {offer external id: {option: value}}")
    return {str(k): dict(v) for k, v in value.items()}


_CONFIG_CHECKS: dict[str, Callable[[Any], Any]] = {
    "login_host": _host, "ssh_options": _strings, "ssh_command": _strings, "work_dir": _abs_path,
    "accounting": _accounting, "jobcomp_file": _optional_path, "pending_limit_s": _seconds,
    "max_log_bytes": _positive_int, "sbatch_args": _strings, "offers": _offers,
}
