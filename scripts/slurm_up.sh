#!/usr/bin/env bash
# Bring up a single-node Slurm cluster on this machine, for the Slurm driver's tests and for demos.
#
# Idempotent: installs Debian's packages only when they are missing, rewrites the configuration only when it
# differs (restarting the daemons that read it), starts only the daemons that are not running, resumes a
# drained node, and waits until `sinfo` shows the node up. Safe to run again while Slurm is up and running jobs.
# Exits non-zero with a message saying what failed.
#
# Runs as root (installs packages, starts daemons). No systemd needed: daemons are started directly.
#
# Environment (all optional):
#   SLURM_ACCOUNTING=1     run slurmdbd + MariaDB so `sacct` works (usage is metered from Slurm's accounting);
#                          0 = no accounting (the driver then reads `scontrol show job` and the jobcomp file)
#   SLURM_CLUSTER_NAME=broker   SLURM_PARTITION=debug
#   SLURM_FAKE_GPUS=2      fake GPUs (gres gpu:<type>) on the node; device files are char devices like /dev/null
#   SLURM_GPU_TYPE=fake    the gres type name (`--gres=gpu:fake:1`)
#   SLURM_UP_TIMEOUT=60    seconds to wait for each daemon / the node
#   SLURM_UP_FORCE=0       1 = overwrite an /etc/slurm/slurm.conf this script did not write
set -euo pipefail

ACCOUNTING=${SLURM_ACCOUNTING:-1}
CLUSTER=${SLURM_CLUSTER_NAME:-broker}
PARTITION=${SLURM_PARTITION:-debug}
FAKE_GPUS=${SLURM_FAKE_GPUS:-2}
GPU_TYPE=${SLURM_GPU_TYPE:-fake}
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
FORCE=${SLURM_UP_FORCE:-0}

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
MARKER="# Written by scripts/slurm_up.sh"
START_NS=$(date +%s%N)

log() { echo "slurm_up: $*"; }
die() { echo "slurm_up: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
case "$ACCOUNTING" in 0|1) ;; *) die "SLURM_ACCOUNTING must be 0 or 1, not '$ACCOUNTING'" ;; esac
[[ "$FAKE_GPUS" =~ ^[0-9]+$ ]] || die "SLURM_FAKE_GPUS must be a whole number, not '$FAKE_GPUS'"

# wait_until SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s; die when the time is up.
wait_until() {
  local seconds=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$what did not happen within ${seconds}s"
    sleep 0.2
  done
}

# pid_alive PIDFILE NAME: the pid file names a live process whose command is NAME.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# any_process NAME: some process has this command name (a daemon without its pid file, e.g. one shutting down).
any_process() {
  local comm
  for comm in /proc/[0-9]*/comm; do
    [ "$(cat "$comm" 2>/dev/null)" = "$1" ] && return 0
  done
  return 1
}

# start_daemon PIDFILE NAME COMMAND...: start NAME unless its pid file names a live one; first wait for an
# instance that is still exiting (no pid file any more) to be gone, so the new one can bind its port.
start_daemon() {
  local pidfile=$1 name=$2; shift 2
  pid_alive "$pidfile" "$name" && return 0
  if any_process "$name"; then
    log "waiting for an exiting $name to stop"
    wait_until "$TIMEOUT" "the exiting $name to stop" sh -c "! { $(declare -f any_process); any_process $name; }"
  fi
  log "starting $name"
  setsid "$@" </dev/null >/dev/null 2>&1 || die "$name failed to start (see $LOG_DIR/$name.log)"
}

# stop_daemon PIDFILE NAME: stop the daemon named by its pid file (one this script started) and wait for it.
stop_daemon() {
  local pid
  pid_alive "$1" "$2" || return 0
  pid=$(cat "$1")
  log "stopping $2 (pid $pid) to apply the new configuration"
  kill "$pid"
  wait_until "$TIMEOUT" "$2 (pid $pid) exiting" sh -c "! kill -0 $pid"
}

# --- packages ---------------------------------------------------------------------------------------------
missing=()
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)
if [ "$ACCOUNTING" = 1 ]; then
  command -v slurmdbd >/dev/null 2>&1 || missing+=(slurmdbd)
  command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
fi
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and there is no apt-get to install them"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "${missing[@]}" >/tmp/slurm_up.apt.log 2>&1; then
    log "install failed; running apt-get update and retrying"
    apt-get update -qq >>/tmp/slurm_up.apt.log 2>&1 || die "apt-get update failed (see /tmp/slurm_up.apt.log)"
    apt-get install -y -qq "${missing[@]}" >>/tmp/slurm_up.apt.log 2>&1 \
      || die "apt-get install ${missing[*]} failed (see /tmp/slurm_up.apt.log)"
  fi
fi

mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd /run/munge
chown munge:munge /run/munge

# --- munge ------------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  rm -f /run/munge/munged.pid
  setsid su -s /bin/sh munge -c /usr/sbin/munged </dev/null >/dev/null 2>&1 || die "munged failed to start"
  wait_until "$TIMEOUT" "munge answering" sh -c "munge -n | unmunge"
fi

# --- configuration ----------------------------------------------------------------------------------------
# The node as slurmd sees this machine (CPUs, sockets, cores, threads, memory), renamed to localhost.
node_hw=$(slurmd -C 2>/dev/null | head -1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')
[ -n "$node_hw" ] || die "'slurmd -C' did not describe this machine"

gres_node=""
gres_conf="AutoDetect=off"
gres_types=""
if [ "$FAKE_GPUS" -gt 0 ]; then
  # One char device per fake GPU (slurmd counts the files); they behave like /dev/null.
  for ((i = 0; i < FAKE_GPUS; i++)); do
    [ -c "/dev/fakegpu$i" ] || mknod -m 666 "/dev/fakegpu$i" c 1 3 || die "cannot create /dev/fakegpu$i"
  done
  last=$((FAKE_GPUS - 1))
  if [ "$last" = 0 ]; then files=/dev/fakegpu0; else files="/dev/fakegpu[0-$last]"; fi
  gres_node=" Gres=gpu:$GPU_TYPE:$FAKE_GPUS"
  gres_types="GresTypes=gpu"
  gres_conf=$(printf 'AutoDetect=off\nNodeName=localhost Name=gpu Type=%s File=%s' "$GPU_TYPE" "$files")
fi

if [ "$ACCOUNTING" = 1 ]; then
  accounting=$(cat <<EOF
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
EOF
)
else
  accounting=$(printf 'JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none')
fi

slurm_conf=$(cat <<EOF
$MARKER (single-node test cluster; accounting=$ACCOUNTING)
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
$accounting
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
KillWait=5
MinJobAge=600
$gres_types
NodeName=localhost $node_hw$gres_node State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
)

if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf" && [ "$FORCE" != 1 ]; then
  die "$CONF_DIR/slurm.conf exists and was not written by this script; set SLURM_UP_FORCE=1 to replace it"
fi

changed=0
# write_if_changed PATH MODE CONTENT: replace the file only when its content differs.
write_if_changed() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$3" ]; then return 0; fi
  printf '%s\n' "$3" >"$1.new"
  chmod "$2" "$1.new"
  mv "$1.new" "$1"
  log "wrote $1"
  changed=1
}
write_if_changed "$CONF_DIR/slurm.conf" 644 "$slurm_conf"
write_if_changed "$CONF_DIR/gres.conf" 644 "$gres_conf"
slurm_changed=$changed

# --- accounting: MariaDB + slurmdbd -------------------------------------------------------------------------
if [ "$ACCOUNTING" = 1 ]; then
  if ! mariadb -e 'SELECT 1' >/dev/null 2>&1; then
    log "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null 2>&1 \
      || die "mariadb-install-db failed"
    setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
      --bind-address=127.0.0.1 </dev/null >>"$LOG_DIR/mariadb.log" 2>&1 &
    wait_until "$TIMEOUT" "MariaDB answering" mariadb -e 'SELECT 1'
  fi
  # The database password lives only in slurmdbd.conf (mode 600); made once, reused afterwards.
  db_pass=""
  [ -f "$CONF_DIR/slurmdbd.conf" ] && db_pass=$(sed -n 's/^StoragePass=//p' "$CONF_DIR/slurmdbd.conf")
  [ -n "$db_pass" ] || db_pass=$(head -c 18 /dev/urandom | base64 | tr -d '+/=')
  mariadb <<EOF || die "could not create the accounting database"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
  changed=0
  write_if_changed "$CONF_DIR/slurmdbd.conf" 600 "$(cat <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF
)"
  [ "$changed" = 1 ] && stop_daemon /run/slurmdbd.pid slurmdbd
  start_daemon /run/slurmdbd.pid slurmdbd /usr/sbin/slurmdbd
  wait_until "$TIMEOUT" "slurmdbd answering (see $LOG_DIR/slurmdbd.log)" sacctmgr -n list cluster
  if [ -z "$(sacctmgr -n -P list cluster format=cluster where cluster="$CLUSTER")" ]; then
    log "registering cluster $CLUSTER in the accounting database"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
  fi
fi

# --- slurmctld and slurmd ---------------------------------------------------------------------------------
if [ "$slurm_changed" = 1 ]; then
  stop_daemon /run/slurmd.pid slurmd
  stop_daemon /run/slurmctld.pid slurmctld
fi
# -i: ignore job state saved under an older configuration instead of refusing to start.
start_daemon /run/slurmctld.pid slurmctld /usr/sbin/slurmctld -i
wait_until "$TIMEOUT" "slurmctld answering (see $LOG_DIR/slurmctld.log)" sh -c 'scontrol ping | grep -q UP'
start_daemon /run/slurmd.pid slurmd /usr/sbin/slurmd -N localhost

# --- the node: resume it if drained or down, then wait until it can take jobs --------------------------------
node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -1; }
node_ready() { case "$(node_state)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac; }
deadline=$(( $(date +%s) + TIMEOUT ))
until node_ready; do
  state=$(node_state)
  case "$state" in
    *drain*|down*|*fail*|inval*)
      scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    reason=$(sinfo -h -n localhost -o %E 2>/dev/null | head -1)
    die "node localhost is '${state:-unknown}' (reason: ${reason:-none}) after ${TIMEOUT}s; see $LOG_DIR/slurmd.log"
  fi
  sleep 0.3
done

elapsed_ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
elapsed=$(printf '%d.%01d' $((elapsed_ms / 1000)) $(((elapsed_ms % 1000) / 100)))
log "ready in ${elapsed}s: node localhost $(node_state), partition $PARTITION, ${FAKE_GPUS} fake GPU(s) gpu:$GPU_TYPE, accounting=$ACCOUNTING"
