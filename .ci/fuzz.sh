#!/usr/bin/env bash
# Fuzzes the whole OpenAPI spec with schemathesis against the real server (the debug binary
# the test step built), signed in as a user and as an admin, on both backends:
#
#   bash .ci/fuzz.sh [embedded|scale-out ...]      (default: both)
#
# Every schemathesis check (no 5xx; documented statuses, bodies, headers and content types;
# schema-valid requests accepted and schema-violating ones rejected; 405 with `Allow`; …) in
# the examples, coverage, fuzzing and stateful phases, plus no panic in the server log.
# `.ci/schemathesis.toml` lists, per operation, what the spec cannot express. Bounded:
# FUZZ_EXAMPLES cases per operation and phase (default 10), FUZZ_MAX_TIME seconds per run
# (default 120). Operations that can take away the fuzzer's own access (revoking API keys,
# changing roles: it may revoke its own key or, once it has promoted someone, demote itself)
# run last, in a pass of their own (FUZZ_LAST_TIME seconds, default 30); before it, a
# pass signed in with a session covers what API keys may not do (create keys, approve
# device sign-ins). Cases run are counted per phase.
# Installs schemathesis from PyPI into a venv under target/ (reused between runs).
# Exit 1 on any finding; the reports are in target/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ST_VERSION=4.32.5
examples=${FUZZ_EXAMPLES:-10}
max_time=${FUZZ_MAX_TIME:-120}
checks=${FUZZ_CHECKS:-all}
phases=${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}
last_time=${FUZZ_LAST_TIME:-30}
declare -A phase_cases=()
bin=${FUNMAGIC_SERVER_BIN:-target/debug/funmagic-server}
out=target/fuzz
venv=target/fuzz-venv
mkdir -p "$out"
log() { echo "fuzz.sh: $*" >&2; }

[ -x "$bin" ] || { log "$bin is missing: build it first (cargo test --workspace builds it)"; exit 1; }
# (pip's output is read whole first: `grep -q` closing the pipe early fails it under pipefail.)
installed=$("$venv/bin/pip" show schemathesis 2>/dev/null || true)
if [ ! -x "$venv/bin/st" ] || ! grep -q "Version: $ST_VERSION" <<<"$installed"; then
  log "installing schemathesis $ST_VERSION"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# POST JSON, print the response body; fails on a non-2xx answer.
post() { curl -sf -X POST -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2" "$1"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

findings=0
total_cases=0
run_backend() {
  local backend=$1 port data base db=""
  port=$(free_port)
  data=$(mktemp -d /tmp/funmagic-fuzz.XXXXXX)
  base="http://127.0.0.1:$port"
  local -a env=(
    FUNMAGIC_DATA_DIR="$data" FUNMAGIC_LOG=warn FUNMAGIC_BOOTSTRAP_ADMIN=false
    FUNMAGIC_AUTH_RATE_LIMIT_PER_MINUTE=100000 FUNMAGIC_AUTH_RATE_LIMIT_PER_EMAIL_PER_MINUTE=100000
    FUNMAGIC_ARGON2_MEMORY_KIB=1024 FUNMAGIC_ARGON2_ITERATIONS=1
  )
  if [ "$backend" = scale-out ]; then
    db="funmagic_fuzz_$$"
    psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db with (force)" >/dev/null
    psql -h 127.0.0.1 -U postgres -qc "create database $db" >/dev/null
    env+=(DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_URL="redis://127.0.0.1:6379"
      FUNMAGIC_REDIS_PREFIX="fmfuzz$$")
    if [ -n "${FUNMAGIC_TEST_S3_ENDPOINT:-}" ]; then
      env+=(S3_ENDPOINT="$FUNMAGIC_TEST_S3_ENDPOINT" S3_ACCESS_KEY="$FUNMAGIC_TEST_S3_ACCESS_KEY"
        S3_SECRET_KEY="$FUNMAGIC_TEST_S3_SECRET_KEY" S3_REGION="${FUNMAGIC_TEST_S3_REGION:-garage}"
        FUNMAGIC_S3_PATH_STYLE=true)
    fi
  fi
  echo 'fuzz admin password 1' | env "${env[@]}" "$bin" admin create-super-admin \
    --email admin@fuzz.example --password-stdin >/dev/null
  env "${env[@]}" "$bin" serve --listen "127.0.0.1:$port" >"$out/$backend-server.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 1 100); do curl -sf "$base/health" >/dev/null 2>&1 && break; sleep 0.2; done

  # API keys rather than sessions: a fuzzed sign-out cannot end the run's credentials.
  local admin_session user_session admin_key user_key
  local admin_signin user_signup
  admin_signin=$(post "$base/api/auth/sign-in/email" '{"email":"admin@fuzz.example","password":"fuzz admin password 1"}')
  user_signup=$(post "$base/api/auth/sign-up/email" '{"name":"Fuzz User","email":"user@fuzz.example","password":"fuzz user password 1"}')
  admin_session=$(json "['token']" <<<"$admin_signin")
  user_session=$(json "['token']" <<<"$user_signup")
  admin_key=$(post "$base/api/auth/api-keys" '{"name":"fuzz","scope":"admin"}' "$admin_session" | json "['key']")
  user_key=$(post "$base/api/auth/api-keys" '{"name":"fuzz","scope":"write"}' "$user_session" | json "['key']")
  # Credits for both, so submitted tasks run and the stateful phase can follow real tasks.
  local who_id
  for who_id in "$(json "['user']['id']" <<<"$admin_signin")" "$(json "['user']['id']" <<<"$user_signup")"; do
    post "$base/api/admin/users/$who_id/credits" '{"amount":1000000,"description":"fuzz budget"}' "$admin_key" >/dev/null
  done

  local role key pass credential
  for role in user admin; do
    key=$user_key; [ "$role" = admin ] && key=$admin_key
    for pass in main session last; do
      credential=$key
      local -a select=(--exclude-operation-id auth_api_key_revoke --exclude-operation-id admin_user_role_set
        --exclude-operation-id admin_user_delete --exclude-path-regex '^/api/tasks/\{id\}/stream$')
      local limit=$max_time
      if [ "$pass" = session ]; then
        # What only a signed-in session may do (API keys get 403 SESSION_REQUIRED there).
        # A fresh session: the main pass may have revoked the earlier ones.
        local who=user; [ "$role" = admin ] && who=admin
        credential=$(post "$base/api/auth/sign-in/email" \
          "{\"email\":\"$who@fuzz.example\",\"password\":\"fuzz $who password 1\"}" | json "['token']")
        select=(--include-operation-id auth_api_key_create --include-operation-id auth_api_key_list
          --include-operation-id auth_device_code_create --include-operation-id auth_device_pending_get
          --include-operation-id auth_device_approve --include-operation-id auth_session_get
          --include-operation-id auth_password_change)
        limit=$last_time
      elif [ "$pass" = last ]; then
        select=(--include-operation-id auth_api_key_list --include-operation-id auth_api_key_revoke
          --include-operation-id admin_user_list --include-operation-id admin_user_role_set
          --include-operation-id admin_user_delete)
        limit=$last_time
      fi
      log "$backend as $role ($pass pass): up to $examples cases per operation and phase, at most ${limit}s"
      local name="$backend-$role-$pass"
      local report="$out/$name.ndjson" rc=0
      # From target/fuzz: schemathesis keeps its cache (.schemathesis/) in the working directory.
      # The request timeout leaves room for the relay long poll (waitSecs up to 30).
      (cd "$out" && "$root/$venv/bin/st" --config-file "$root/.ci/schemathesis.toml" run "$base/openapi.json" \
        --header "Authorization: Bearer $credential" \
        --checks "$checks" \
        --phases "$phases" \
        --max-examples "$examples" --max-time "$limit" --workers 1 --seed 42 \
        --request-timeout 35 --no-shrink --continue-on-failure \
        "${select[@]}" \
        --report ndjson --report-ndjson-path "$root/$report" \
        --output-truncate true) >"$out/$name.txt" 2>&1 || rc=$?
      local cases=0 phase n
      while read -r phase n; do
        [ -n "$phase" ] || continue
        phase_cases[$phase]=$(( ${phase_cases[$phase]:-0} + n ))
        cases=$((cases + n))
      done < <(python3 - "$report" <<'PY' 2>/dev/null || true
import json, sys, collections
per = collections.Counter()
for line in open(sys.argv[1]):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    done = ev.get("ScenarioFinished")
    if isinstance(done, dict) and isinstance(done.get("recorder"), dict):
        per[done.get("phase", "?")] += len(done["recorder"].get("cases", {}))
for phase, n in per.items():
    print(phase, n)
PY
)
      total_cases=$((total_cases + cases))
      grep -E '^ *(✅|❌|⏭|Scenarios|API Links)|passed|failed' "$out/$name.txt" | head -n 20 >&2 || true
      log "$name: $cases cases"
      if [ "$rc" -ne 0 ]; then
        tail -n 40 "$out/$name.txt" >&2
        log "$name: FINDINGS (exit $rc); see $out/$name.txt"
        findings=$((findings + 1))
      fi
    done
  done

  if grep -qiE 'panicked|panic' "$out/$backend-server.log"; then
    log "$backend: the server log has a panic:"
    grep -iE -m5 'panicked|panic' "$out/$backend-server.log" >&2
    findings=$((findings + 1))
  fi
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  [ -n "$db" ] && psql -h 127.0.0.1 -U postgres -qc "drop database if exists $db with (force)" >/dev/null
  rm -rf "$data"
}

backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(embedded scale-out)
for b in "${backends[@]}"; do run_backend "$b"; done
per=""
for p in examples coverage fuzzing stateful; do per+=" $p=${phase_cases[$p]:-0}"; done
log "cases run: $total_cases (per phase:$per); runs with findings: $findings"
[ "$findings" -eq 0 ]
