"""The bash scripts the driver runs where Slurm's commands are (see transport.py). Arguments are positional.

Exit statuses: 0 done; 75 try again (controller or accounting unreachable, lock busy); 65 bad input; anything
else is the failing Slurm command's own status with its message on stderr.
"""

from __future__ import annotations

from workers.drivers.slurm.parsing import SACCT_FIELDS

# sacct only lists jobs that were eligible in its time window unless states are named; held jobs never are.
SACCT_ALL_STATES = "PD,R,S,CA,CD,CF,F,TO,NF,PR,OOM,BF,DL,RQ,RS,RV,SE"

# create NAME KEYS_DIR LOCK_WAIT ACCOUNTING(0|1|auto) JOB_SCRIPT_BASE64 SBATCH_ARG...
# Under a per-key lock: the job recorded for this key, else a job already carrying the key's name (squeue, then
# sacct), else a new submission. Prints "existing <id>" or "submitted <id>".
CREATE = r"""
set -u
name=$1 keys=$2 wait=$3 acct=$4 job_b64=$5
shift 5
mkdir -p "$keys" || exit 1
exec 9>>"$keys/$name.lock" || exit 1
flock -w "$wait" 9 || { echo "another create with this idempotency key is still running" >&2; exit 75; }
marker="$keys/$name.job"
if [ -s "$marker" ]; then echo "existing $(head -1 "$marker")"; exit 0; fi
if ! found=$(squeue -h --states=all --name="$name" -o %i 2>&1); then
  printf '%s\n' "$found" >&2; exit 75
fi
found=$(printf '%s\n' "$found" | head -1)
if [ -z "$found" ] && [ "$acct" != 0 ]; then
  found=$(sacct -n -X -P --name="$name" -S 2000-01-01T00:00:00 -E now -s __STATES__ -o JobID 2>/dev/null | tail -1)
fi
if [ -n "$found" ]; then
  printf '%s\n' "$found" >"$marker"; echo "existing $found"; exit 0
fi
err=$(mktemp) || exit 1
out=$(printf '%s' "$job_b64" | base64 -d | sbatch --parsable "$@" 2>"$err")
rc=$?
if [ "$rc" -ne 0 ]; then cat "$err" >&2; rm -f "$err"; exit "$rc"; fi
rm -f "$err"
id=${out%%;*}
case "$id" in ''|*[!0-9]*) echo "sbatch printed no job id: $out" >&2; exit 1 ;; esac
printf '%s\n' "$id" >"$marker"
echo "submitted $id"
""".replace("__STATES__", SACCT_ALL_STATES)

# inspect JOB_ID ACCOUNTING(0|1|auto) SACCT_WHEN(always|fallback) JOBCOMP_FILE [LOG_FILE LOG_OFFSET LOG_MAX]
# Prints tagged lines: "now <cluster time>", "scontrol <line>", "sacct <line>" or "sacct-off" (sacct is asked
# always, or only when slurmctld has forgotten the job), "jobcomp <line>" (only when neither knows the job), and,
# when a log file is given, "log <size or -1>" followed by raw bytes.
INSPECT = r"""
set -u
id=$1 acct=$2 when=$3 jobcomp=$4
case "$id" in ''|*[!0-9]*) echo "not a Slurm job id: '$id'" >&2; exit 65 ;; esac
echo "now $(date +%Y-%m-%dT%H:%M:%S)"
known=0
if out=$(scontrol show job -o "$id" 2>&1); then
  printf 'scontrol %s\n' "$(printf '%s\n' "$out" | head -1)"; known=1
else
  case "$out" in
    *"Invalid job id"*) ;;
    *) printf '%s\n' "$out" >&2; exit 75 ;;
  esac
fi
if [ "$acct" != 0 ] && { [ "$when" = always ] || [ "$known" = 0 ]; }; then
  if out=$(sacct -X -n -P -j "$id" -o __FIELDS__ 2>&1); then
    line=$(printf '%s\n' "$out" | grep "^$id|" | tail -1)
    if [ -n "$line" ]; then printf 'sacct %s\n' "$line"; known=1; fi
  else
    case "$out" in
      *"accounting storage is disabled"*) echo "sacct-off" ;;
      *) if [ "$acct" = 1 ]; then printf '%s\n' "$out" >&2; exit 75; fi; echo "sacct-off" ;;
    esac
  fi
fi
if [ "$known" = 0 ] && [ -n "$jobcomp" ] && [ -r "$jobcomp" ]; then
  line=$(grep "^JobId=$id " "$jobcomp" | tail -1)
  if [ -n "$line" ]; then printf 'jobcomp %s\n' "$line"; fi
fi
if [ $# -ge 7 ]; then
  file=$5 offset=$6 max=$7
  if [ -f "$file" ]; then
    echo "log $(stat -c %s "$file")"
    tail -c "+$((offset + 1))" "$file" | head -c "$max"
  else
    echo "log -1"
  fi
fi
""".replace("__FIELDS__", ",".join(SACCT_FIELDS))

# cancel JOB_ID: scancel; a finished or unknown job is not an error (scancel exits 0 for those).
CANCEL = r"""
set -u
id=$1
case "$id" in ''|*[!0-9]*) echo "not a Slurm job id: '$id'" >&2; exit 65 ;; esac
if ! out=$(scancel "$id" 2>&1); then
  case "$out" in
    *"Invalid job id"*|*"already completing or completed"*) exit 0 ;;
    *) printf '%s\n' "$out" >&2; exit 75 ;;
  esac
fi
"""
