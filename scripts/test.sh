#!/usr/bin/env bash
# `make test`: the whole suite on DATABASE_URL (SQLite under $BROKER_VAR_DIR when unset), and the tests marked
# db_engine (constraints, locking) also on the other engine:
#   - DATABASE_URL is PostgreSQL          -> db_engine tests also on SQLite
#   - SQLite and TEST_BOTH_DBS=1          -> db_engine tests also on PostgreSQL (TEST_PG_URL, default local)
# pytest's exit code 5 ("no tests collected") is reported and treated as success, so a run of an empty selection
# does not fail the build; any other non-zero code fails it.
set -uo pipefail
BIN=${BIN:-$(pwd)/.venv/bin}
export BROKER_DEV=1

run_pytest() {
  local label=$1; shift
  echo "== pytest ($label) $*"
  "$BIN/pytest" --durations=25 "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "== pytest ($label): no tests collected"
    return 0
  fi
  return "$rc"
}

db_url=${DATABASE_URL:-}
case "$db_url" in
  postgres://*|postgresql://*|pgsql://*) main=postgresql ;;
  *) main=sqlite ;;
esac

# The engine-dependent tests on the other engine go first, so that the last summary line printed is the
# whole suite's (CI reads the closing lines).
other_rc=0
if [ "$main" = postgresql ]; then
  DATABASE_URL= run_pytest "sqlite, db_engine" -m db_engine "$@" || other_rc=$?
elif [ "${TEST_BOTH_DBS:-0}" = 1 ]; then
  DATABASE_URL=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test} \
    run_pytest "postgresql, db_engine" -m db_engine "$@" || other_rc=$?
fi

run_pytest "$main" "$@"
rc=$?
[ "$rc" -eq 0 ] && rc=$other_rc
if [ "$other_rc" -ne 0 ]; then
  echo "== the db_engine tests failed on the other engine (exit code $other_rc); see above"
fi
exit "$rc"
