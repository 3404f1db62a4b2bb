#!/usr/bin/env bash
# CPU per task, process by process, for one phase of the side-by-side driver against one
# FunMagic deployment on this machine (see ARCHITECTURE.md, Performance).
#
#   xtask/scripts/cpu-per-task.sh            after `cargo build --release --bins` and one run
#                                            of ../shared/bench/side-by-side (which builds the
#                                            driver in $BENCH_WORK)
# Environment: MODE=pg|embedded (pg), PHASE=drain|e2e|submit (drain), N tasks (5000),
# SECS for submit (10), BIN (target/release), BENCH_WORK (/tmp/funmagic-bench),
# PORT (8799), PRESQL (SQL run on the fresh pg database after migrating: try a schema change
# without a build), PRELOAD (tasks drained before the measured phase, not measured: the
# database then holds as many as the side-by-side's later phases meet), WORKER_CONCURRENCY (10,
# the side-by-side's), KEEP_LOGS (a folder the server's and worker's logs are copied to). Prints the
# driver's result line and CPU ms per completed task for the API, the worker, PostgreSQL
# (every backend and helper, each process once) and Redis.
# The figures include the driver's untimed read-back of every task after e2e and drain (one
# GET each), which the side-by-side's own numbers leave out.
# PostgreSQL and Redis are the machine's (127.0.0.1:5432 as postgres, 127.0.0.1:6379); the
# database funmagic_cpu is dropped and made again, Redis keys get their own prefix.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/funmagic-bench}
LOADGEN=$WORK/loadgen/target/release/loadgen
[ -x "$LOADGEN" ] || { echo "no driver at $LOADGEN: run ../shared/bench/side-by-side once" >&2; exit 2; }
MODE=${MODE:-pg}; PHASE=${PHASE:-drain}; N=${N:-5000}
PORT=${PORT:-8799}; BASE="http://127.0.0.1:$PORT"
RUN=$(mktemp -d); DB=funmagic_cpu
export FUNMAGIC_AUTH_RATE_LIMIT_PER_MINUTE=100000 FUNMAGIC_AUTH_RATE_LIMIT_PER_EMAIL_PER_MINUTE=100000
export FUNMAGIC_BOOTSTRAP_ADMIN=false FUNMAGIC_LOG=warn FUNMAGIC_DATA_DIR="$RUN/data" FUNMAGIC_MAX_RUNNING_PER_USER=3
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; [ -z "${KEEP_LOGS:-}" ] || cp "$RUN"/*.log "$KEEP_LOGS"/ 2>/dev/null; rm -rf "$RUN"' EXIT
if [ "$MODE" = pg ]; then
  psql -h 127.0.0.1 -U postgres -qc "drop database if exists $DB with (force)" >/dev/null
  psql -h 127.0.0.1 -U postgres -qc "create database $DB" >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL="redis://127.0.0.1:6379"
  export FUNMAGIC_REDIS_PREFIX="fmcpu$RANDOM"
  "$BIN/funmagic-server" migrate >/dev/null
  if [ -n "${PRESQL:-}" ]; then psql -h 127.0.0.1 -U postgres -d $DB -qc "$PRESQL"; fi
fi
echo 'cpu admin password 1' | "$BIN/funmagic-server" admin create-super-admin --email admin@cpu.example --password-stdin >/dev/null
if [ "$MODE" = pg ]; then
  "$BIN/funmagic-server" serve --listen "127.0.0.1:$PORT" >"$RUN/server.log" 2>&1 & API=$!; PIDS+=($!)
  "$BIN/funmagic-server" worker --concurrency ${WORKER_CONCURRENCY:-10} >"$RUN/worker.log" 2>&1 & WORKER=$!; PIDS+=($!)
else
  "$BIN/funmagic-server" serve --listen "127.0.0.1:$PORT" --workers ${WORKER_CONCURRENCY:-10} >"$RUN/server.log" 2>&1 & API=$!; PIDS+=($!)
  WORKER=""
fi
for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null 2>&1 && break; sleep 0.1; done
python3 "$WORK/product/setup.py" "$BASE" admin@cpu.example 'cpu admin password 1' 100 1000000 250 \
  "$RUN/users.tokens" "$RUN/contend.tokens" 2>/dev/null
ticks() { for p in "$@"; do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0; done | paste -sd+ | bc; }
postgres_pids() { (pgrep -x postgres; pgrep -f '^postgres:') | sort -u; }
snapshot() { echo "$(ticks $API) $( [ -n "$WORKER" ] && ticks $WORKER || echo 0) $(ticks $(postgres_pids)) $(ticks $(pgrep -x redis-server))"; }
completed_count() {
  if [ "$MODE" = pg ]; then
    psql -h 127.0.0.1 -U postgres -d $DB -Atc "select count(*) from tasks where status = 'completed'"
  else
    python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from tasks where status = 'completed'\").fetchone()[0])" "$RUN/data/funmagic.db"
  fi
}
if [ "${PRELOAD:-0}" -gt 0 ]; then
  "$LOADGEN" drain --base "$BASE" --label preload --tokens "$RUN/users.tokens" --tasks "$PRELOAD" --concurrency 64 >/dev/null
fi
before=$(completed_count)
read -r a0 w0 p0 r0 < <(snapshot)
case $PHASE in
  drain) "$LOADGEN" drain --base "$BASE" --label cpu --tokens "$RUN/users.tokens" --tasks "$N" --concurrency 64 ;;
  e2e) "$LOADGEN" e2e --base "$BASE" --label cpu --tokens "$RUN/users.tokens" --tasks "$N" --concurrency 32 ;;
  submit) "$LOADGEN" submit --base "$BASE" --label cpu --tokens "$RUN/users.tokens" --concurrency 64 --duration "${SECS:-10}" --warmup 1
          "$LOADGEN" settle --base "$BASE" --label cpu/settle --tokens "$RUN/users.tokens" ;;
  *) echo "PHASE: drain, e2e or submit" >&2; exit 2 ;;
esac
read -r a1 w1 p1 r1 < <(snapshot)
# Completed tasks, from the database itself.
completed=$(( $(completed_count) - before ))
python3 - "$completed" "$((a1-a0))" "$((w1-w0))" "$((p1-p0))" "$((r1-r0))" <<'PY'
import os, sys
n = int(sys.argv[1]); ticks = [int(x) for x in sys.argv[2:]]
hz = os.sysconf("SC_CLK_TCK")
ms = [t * 1000 / hz / n for t in ticks]
print("CPU ms per task over %d tasks: api %.3f  worker %.3f  postgres %.3f  redis %.3f  total %.3f"
      % (n, *ms, sum(ms)))
PY
