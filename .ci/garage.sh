#!/usr/bin/env bash
# Starts a single-node Garage (S3-compatible, verifies SigV4) on loopback for the S3 tests,
# with the three FunMagic buckets, a key, and the public bucket served by Garage's web
# endpoint (the tests' CDN), and prints the variables the tests read:
#
#   eval "$(bash .ci/garage.sh)"
#
# Installs Garage with `cargo install --locked garage` when it is not on PATH (slow: it is a
# large Rust program). Idempotent: a node already answering on 127.0.0.1:3900 is reused.
set -euo pipefail
dir="${FUNMAGIC_GARAGE_DIR:-/tmp/funmagic-garage}"
conf="$dir/garage.toml"
key_id="GK0123456789abcdef01234567"
secret="0000000000000000000000000000000000000000000000000000000000f00d42"
log() { echo "garage.sh: $*" >&2; }

if ! command -v garage >/dev/null 2>&1; then
  log "installing garage (cargo install --locked garage@2.5.0); this takes a while the first time"
  cargo install --locked garage --version 2.5.0 >&2
fi

# A node that is not running is started from scratch: an earlier run's metadata (a layout
# already applied, a different node id) only gets in the way of a test server.
if ! (exec 3<>/dev/tcp/127.0.0.1/3900) 2>/dev/null; then
  rm -rf "$dir"
fi
mkdir -p "$dir/meta" "$dir/data"
if [ ! -f "$conf" ]; then
  cat > "$conf" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:3902"
root_domain = ".web.garage.localhost"
index = "index.html"

[admin]
api_bind_addr = "127.0.0.1:3903"
TOML
fi

g() { garage -c "$conf" "$@"; }

if ! (exec 3<>/dev/tcp/127.0.0.1/3900) 2>/dev/null; then
  log "starting garage"
  nohup garage -c "$conf" server > "$dir/garage.log" 2>&1 &
  for _ in $(seq 1 60); do
    (exec 3<>/dev/tcp/127.0.0.1/3901) 2>/dev/null && g status >/dev/null 2>&1 && break
    sleep 0.5
  done
fi

# Wait until the node answers layout queries, then give it a role unless it has one; the
# version applied is the current one plus one, whatever an earlier run left.
layout=""
for _ in $(seq 1 60); do
  layout=$(g layout show 2>/dev/null) && break
  sleep 0.5
done
if ! grep -q "dc1" <<<"$layout"; then
  node=$(g node id -q 2>/dev/null | cut -d@ -f1)
  g layout assign -z dc1 -c 1G "$node" >&2
  current=$(g layout show 2>/dev/null | sed -n 's/.*[Cc]urrent cluster layout version: *\([0-9][0-9]*\).*/\1/p' | head -n1)
  g layout apply --version $(( ${current:-0} + 1 )) >&2
fi

if ! g key info "$key_id" >/dev/null 2>&1; then
  g key import --yes "$key_id" "$secret" -n funmagic-test >&2 2>&1 || g key import "$key_id" "$secret" -n funmagic-test >&2
fi
for bucket in funmagic-public funmagic-private funmagic-admin; do
  g bucket info "$bucket" >/dev/null 2>&1 || g bucket create "$bucket" >&2
  g bucket allow --read --write --owner "$bucket" --key "$key_id" >&2
done
# The public bucket is served anonymously by Garage's web endpoint: it stands in for the
# CDN (CDN_URL) in the tests, selected by the Host header.
g bucket website --allow funmagic-public >&2

# Wait until the S3 API answers (the layout takes a moment to apply).
for _ in $(seq 1 60); do
  code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:3900/ || true)
  [ "$code" != "000" ] && break
  sleep 0.5
done

echo "export FUNMAGIC_TEST_S3_ENDPOINT=http://127.0.0.1:3900"
echo "export FUNMAGIC_TEST_S3_ACCESS_KEY=$key_id"
echo "export FUNMAGIC_TEST_S3_SECRET_KEY=$secret"
echo "export FUNMAGIC_TEST_S3_REGION=garage"
echo "export FUNMAGIC_TEST_S3_CDN_URL=http://127.0.0.1:3902"
echo "export FUNMAGIC_TEST_S3_CDN_HOST=funmagic-public.web.garage.localhost"
