#!/usr/bin/env bash
# Static checks of the deployment artefacts (there is no Docker engine on CI machines; the
# contents are proven by api/tests/it/deploy.rs, which starts the compose services' own
# commands and environment, and api/tests/it/pooler.rs):
#
# - systemd: `systemd-analyze verify` of both units, in a scratch root that has the unit
#   directory and an executable at the units' ExecStart path; `systemd-analyze security`
#   must rate both units "OK" or better; the sysusers file must parse.
# - Kubernetes: every manifest, and the kustomize rendering when kubectl is installed,
#   validated strictly against the Kubernetes 1.30 schemas (kubernetes-validate from PyPI,
#   into a venv under target/, reused between runs).
# - Dockerfile and compose file: checked by the Rust tests in api/tests/it/deploy.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "deploy-check: $*" >&2; }

# --- systemd -------------------------------------------------------------------------------
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib"
cp -a /usr/lib/systemd "$root/usr/lib/" 2>/dev/null || cp -a /lib/systemd "$root/usr/lib/"
printf '#!/bin/sh\nexit 0\n' > "$root/usr/local/bin/funmagic-server"
chmod 0755 "$root/usr/local/bin/funmagic-server"
cp deploy/systemd/*.service "$root/etc/systemd/system/"
out=$(systemd-analyze --root="$root" verify "$root"/etc/systemd/system/funmagic-*.service 2>&1) || {
  echo "$out"; log "systemd-analyze verify failed"; exit 1; }
if [ -n "$out" ]; then echo "$out"; log "systemd-analyze verify warned"; exit 1; fi
for unit in deploy/systemd/*.service; do
  exposure=$(systemd-analyze security --offline=yes --root="$root" "$unit" 2>&1 | tail -n1)
  echo "$unit: $exposure"
  case "$exposure" in
    *"OK"*|*"SAFE"*) ;;
    *) log "$unit is not hardened enough: $exposure"; exit 1 ;;
  esac
done
sysusers=$(systemd-sysusers --dry-run "$PWD/deploy/systemd/funmagic.sysusers.conf" 2>&1) \
  || { echo "$sysusers"; log "the sysusers file does not parse"; exit 1; }
grep -q "user 'funmagic'" <<<"$sysusers" || { echo "$sysusers"; log "the sysusers file makes no funmagic user"; exit 1; }
log "systemd units verified"

# --- Kubernetes ----------------------------------------------------------------------------
venv=target/kubernetes-validate-venv
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  log "installing kubernetes-validate (PyPI)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.31.0"
fi
manifests=$(ls deploy/k8s/*.yaml | grep -v kustomization.yaml)
# shellcheck disable=SC2086
"$venv/bin/kubernetes-validate" -k 1.30.0 --strict $manifests
# Every resource the kustomization lists exists, and every manifest is listed.
listed=$(sed -n 's/^  - \([a-z0-9.-]*\.yaml\)$/\1/p' deploy/k8s/kustomization.yaml | sort)
present=$(cd deploy/k8s && ls *.yaml | grep -v kustomization.yaml | sort)
if [ "$listed" != "$present" ]; then
  log "deploy/k8s/kustomization.yaml resources differ from the files:"; diff <(echo "$listed") <(echo "$present"); exit 1
fi
if command -v kubectl >/dev/null 2>&1; then
  rendered=$(mktemp)
  kubectl kustomize deploy/k8s > "$rendered"
  "$venv/bin/kubernetes-validate" -k 1.30.0 --strict "$rendered"
  rm -f "$rendered"
else
  log "kubectl is not installed: the kustomize rendering is not checked (each manifest was)"
fi
log "Kubernetes manifests validated"
