#!/bin/sh
# One-shot setup of a single-node Garage through its admin API (v2): gives the node a role,
# imports the S3 key FunMagic uses and creates the buckets, allowing the key on each.
# Idempotent. Needs only sh and curl (it runs in the FunMagic image).
#
#   GARAGE_ADMIN_URL   e.g. http://garage:3903
#   GARAGE_ADMIN_TOKEN the admin token Garage was started with
#   S3_ACCESS_KEY      GK + 24 hex digits
#   S3_SECRET_KEY      64 hex digits
#   BUCKETS            space-separated bucket names
set -eu
api() { # METHOD PATH [JSON]
  if [ $# -ge 3 ]; then
    curl -fsS -X "$1" -H "Authorization: Bearer $GARAGE_ADMIN_TOKEN" -H 'content-type: application/json' \
      --data "$3" "$GARAGE_ADMIN_URL$2"
  else
    curl -fsS -X "$1" -H "Authorization: Bearer $GARAGE_ADMIN_TOKEN" "$GARAGE_ADMIN_URL$2"
  fi
}
# A JSON string field's first value: field NAME < json
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n1; }
# A JSON number field's first value.
number() { sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -n1; }

for _ in $(seq 1 60); do
  status=$(api GET /v2/GetClusterStatus 2>/dev/null) && break
  sleep 1
done
[ -n "${status:-}" ] || { echo "garage-init: the admin API at $GARAGE_ADMIN_URL does not answer" >&2; exit 1; }

layout=$(api GET /v2/GetClusterLayout)
if ! printf '%s' "$layout" | tr -d '\n' | grep -q '"roles": *\[ *{'; then
  node=$(printf '%s' "$status" | tr -d '\n' | sed 's/"nodes"/\n/' | tail -n1 | field id)
  echo "garage-init: giving node $node a role"
  api POST /v2/UpdateClusterLayout "{\"roles\":[{\"id\":\"$node\",\"zone\":\"dc1\",\"capacity\":10000000000,\"tags\":[]}]}" >/dev/null
  version=$(api GET /v2/GetClusterLayout | tr -d '\n' | number version)
  api POST /v2/ApplyClusterLayout "{\"version\":$(( ${version:-0} + 1 ))}" >/dev/null
fi

if ! api GET "/v2/GetKeyInfo?id=$S3_ACCESS_KEY" >/dev/null 2>&1; then
  echo "garage-init: importing key $S3_ACCESS_KEY"
  api POST /v2/ImportKey "{\"accessKeyId\":\"$S3_ACCESS_KEY\",\"secretAccessKey\":\"$S3_SECRET_KEY\",\"name\":\"funmagic\"}" >/dev/null
fi

for bucket in $BUCKETS; do
  info=$(api GET "/v2/GetBucketInfo?globalAlias=$bucket" 2>/dev/null || true)
  if [ -z "$info" ]; then
    echo "garage-init: creating bucket $bucket"
    info=$(api POST /v2/CreateBucket "{\"globalAlias\":\"$bucket\"}")
  fi
  id=$(printf '%s' "$info" | tr -d '\n' | field id)
  api POST /v2/AllowBucketKey \
    "{\"bucketId\":\"$id\",\"accessKeyId\":\"$S3_ACCESS_KEY\",\"permissions\":{\"read\":true,\"write\":true,\"owner\":true}}" >/dev/null
done
echo "garage-init: ready"
