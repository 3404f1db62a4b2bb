#!/usr/bin/env bash
# Re-create api/web/static/vendor/three/ from the npm registry tarball of `three`.
#
# Usage: api/web/vendor-three.sh [VERSION]      (default: 0.170.0)
#
# What it does:
#   1. `npm pack three@VERSION` in a temp dir, checks the tarball's sha512 against
#      `npm view three@VERSION dist.integrity` (and against the pinned value below
#      when VERSION is the default), extracts it.
#   2. Copies build/three.module.min.js, OrbitControls.js, GLTFLoader.js,
#      PLYLoader.js, BufferGeometryUtils.js and everything they import
#      (transitively; static imports read with node's module parser) into ONE flat
#      folder, plus the package's LICENSE.
#   3. Rewrites every import specifier to a flat sibling:
#        'three'                  -> './three.module.min.js'
#        '<any/relative>/Name.js' -> './Name.js'
#   4. Verifies every remaining specifier is './X.js' naming a file in the folder,
#      that there are no dynamic import()s, and that node can link the modules.
#   5. Writes README.md (version, integrity, files, sizes, rewrites).
#
# Needs: bash, node (>= 18), npm, tar, gzip. Only the npm registry is contacted.
set -euo pipefail

DEFAULT_VERSION="0.170.0"
# `npm view three@0.170.0 dist.integrity`, recorded when the folder was first vendored.
DEFAULT_INTEGRITY="sha512-FQK+LEpYc0fBD+J8g6oSEyyNzjp+Q7Ks1C568WWaoMRLW+TkNNWmenWeGgJjV105Gd+p/2ql1ZcjYvNiPZBhuQ=="

VERSION="${1:-$DEFAULT_VERSION}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$SCRIPT_DIR/static/vendor/three"

# Entry points, as paths inside the npm package.
ENTRIES=(
  build/three.module.min.js
  examples/jsm/controls/OrbitControls.js
  examples/jsm/loaders/GLTFLoader.js
  examples/jsm/loaders/PLYLoader.js
  examples/jsm/utils/BufferGeometryUtils.js
)
# Bare specifier 'three' resolves to this package file.
THREE_MAIN="build/three.module.min.js"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Lists the static import/export-from specifiers of an ES module, one per line,
# using V8's own module parser (no regex guessing, comments are ignored).
cat > "$WORK/specifiers.mjs" <<'EOF'
import vm from 'node:vm';
import fs from 'node:fs';
const file = process.argv[2];
const mod = new vm.SourceTextModule(fs.readFileSync(file, 'utf8'), { identifier: file });
for (const s of mod.dependencySpecifiers) console.log(s);
EOF
specifiers() {
  node --no-warnings --experimental-vm-modules "$WORK/specifiers.mjs" "$1"
}

echo ">> npm pack three@$VERSION"
cd "$WORK"
TARBALL="$(npm pack --silent "three@$VERSION" | tail -n1)"
INTEGRITY="$(npm view "three@$VERSION" dist.integrity)"
ACTUAL="sha512-$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$TARBALL")"
if [[ "$ACTUAL" != "$INTEGRITY" ]]; then
  echo "integrity mismatch: tarball $ACTUAL, registry $INTEGRITY" >&2; exit 1
fi
if [[ "$VERSION" == "$DEFAULT_VERSION" && "$ACTUAL" != "$DEFAULT_INTEGRITY" ]]; then
  echo "integrity differs from the pinned one: $ACTUAL vs $DEFAULT_INTEGRITY" >&2; exit 1
fi
mkdir pkg
tar -xzf "$TARBALL" -C pkg
PKG="$WORK/pkg/package"
[[ "$(node -p 'require(process.argv[1]).version' "$PKG/package.json")" == "$VERSION" ]]

OUT="$WORK/out"
mkdir "$OUT"
declare -A SRC_OF=()      # flat name -> package path
declare -A REWRITES=()    # flat name -> "old|new" lines
QUEUE=("${ENTRIES[@]}")

# Collect the transitive closure of static imports, flat.
while ((${#QUEUE[@]})); do
  rel="${QUEUE[0]}"; QUEUE=("${QUEUE[@]:1}")
  name="$(basename "$rel")"
  if [[ -n "${SRC_OF[$name]:-}" ]]; then
    [[ "${SRC_OF[$name]}" == "$rel" ]] && continue
    echo "flat name clash: $name is both ${SRC_OF[$name]} and $rel" >&2; exit 1
  fi
  [[ -f "$PKG/$rel" ]] || { echo "missing in package: $rel" >&2; exit 1; }
  SRC_OF[$name]="$rel"
  cp "$PKG/$rel" "$OUT/$name"
  REWRITES[$name]=""
  specs="$(specifiers "$PKG/$rel")"
  while IFS= read -r spec; do
    [[ -z "$spec" ]] && continue
    case "$spec" in
      three)    target="$THREE_MAIN" ;;
      ./*|../*) target="$(node -p 'require("path").posix.normalize(process.argv[1])' "$(dirname "$rel")/$spec")" ;;
      *) echo "$rel: unsupported bare import '$spec'" >&2; exit 1 ;;
    esac
    QUEUE+=("$target")
    new="./$(basename "$target")"
    if [[ "$spec" != "$new" ]]; then
      REWRITES[$name]+="$spec|$new"$'\n'
    fi
  done <<< "$specs"
done

# Rewrite specifiers: only the quoted string right after `from` / `import`.
for name in "${!REWRITES[@]}"; do
  [[ -z "${REWRITES[$name]}" ]] && continue
  printf '%s' "${REWRITES[$name]}" | node -e '
    const fs = require("fs");
    const file = process.argv[1];
    let src = fs.readFileSync(file, "utf8");
    const pairs = fs.readFileSync(0, "utf8").split("\n").filter(Boolean).map(l => l.split("|"));
    const esc = s => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    for (const [from, to] of pairs) {
      const re = new RegExp("(\\b(?:from|import)\\s*)([\x27\x22])" + esc(from) + "\\2", "g");
      const before = src;
      src = src.replace(re, (m, kw, q) => kw + q + to + q);
      if (src === before) { console.error(file + ": specifier not found: " + from); process.exit(1); }
    }
    fs.writeFileSync(file, src);
  ' "$OUT/$name"
done

# Verify: every specifier is ./X.js naming a sibling; no dynamic import().
for f in "$OUT"/*.js; do
  specs="$(specifiers "$f")"
  while IFS= read -r spec; do
    [[ -z "$spec" ]] && continue
    if [[ ! "$spec" =~ ^\./[A-Za-z0-9._-]+\.js$ || ! -f "$OUT/${spec#./}" ]]; then
      echo "$(basename "$f"): bad import '$spec' after rewrite" >&2; exit 1
    fi
  done <<< "$specs"
  if grep -qE '\bimport[[:space:]]*\(' "$f"; then
    echo "$(basename "$f"): contains a dynamic import(), check it by hand" >&2; exit 1
  fi
done
# Verify: node can parse and link the whole graph (named imports resolve).
# Linking does not evaluate, so no browser globals are needed.
node --no-warnings --experimental-vm-modules --input-type=module -e '
  import vm from "node:vm"; import fs from "node:fs"; import path from "node:path";
  const dir = process.argv[1]; const cache = new Map();
  const load = f => { if (!cache.has(f)) cache.set(f, new vm.SourceTextModule(fs.readFileSync(f, "utf8"), { identifier: f })); return cache.get(f); };
  for (const f of fs.readdirSync(dir).filter(n => n.endsWith(".js"))) {
    const m = load(path.join(dir, f));
    if (m.status === "unlinked") await m.link((spec, ref) => load(path.resolve(path.dirname(ref.identifier), spec)));
  }
  console.log(">> linked " + cache.size + " modules");
' "$OUT"

cp "$PKG/LICENSE" "$OUT/LICENSE"

# README.md
{
  echo "# Vendored three.js"
  echo
  echo "Generated by \`api/web/vendor-three.sh\`; do not edit the files here by hand, re-run the script."
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| package | \`three\` (npm registry) |"
  echo "| version | \`$VERSION\` |"
  echo "| tarball | \`$TARBALL\` |"
  echo "| integrity | \`$INTEGRITY\` |"
  echo "| license | MIT, see \`LICENSE\` (the package's own) |"
  echo
  echo "Served from our own origin so the page works under \`script-src 'self'\` with no CDN and no network at run time."
  echo "The files are ES modules; load them with \`<script type=\"module\">\` and import e.g. \`./vendor/three/three.module.min.js\`."
  echo
  echo "## Files"
  echo
  echo "| file | from the package | bytes | gzip bytes |"
  echo "| --- | --- | ---: | ---: |"
  for name in $(printf '%s\n' "${!SRC_OF[@]}" | sort); do
    echo "| \`$name\` | \`${SRC_OF[$name]}\` | $(wc -c < "$OUT/$name") | $(gzip -c "$OUT/$name" | wc -c) |"
  done
  echo "| \`LICENSE\` | \`LICENSE\` | $(wc -c < "$OUT/LICENSE") | $(gzip -c "$OUT/LICENSE" | wc -c) |"
  echo
  echo "## Import rewrites"
  echo
  echo "The files are copied byte for byte except for these import specifiers (the quoted string after \`from\`), which were rewritten to point at flat siblings in this folder:"
  echo
  echo "| file | before | after |"
  echo "| --- | --- | --- |"
  for name in $(printf '%s\n' "${!REWRITES[@]}" | sort); do
    while IFS='|' read -r from to; do
      [[ -z "$from" ]] && continue
      echo "| \`$name\` | \`'$from'\` | \`'$to'\` |"
    done <<< "${REWRITES[$name]}"
  done
  echo
  echo "Afterwards every static import specifier (as read by node's module parser) is \`./X.js\` naming a file here, no file has a dynamic \`import()\`, and node links the module graph."
  echo
  echo "## Redo / upgrade"
  echo
  echo '```sh'
  echo "api/web/vendor-three.sh            # this version ($DEFAULT_VERSION), integrity checked against the pinned value"
  echo "api/web/vendor-three.sh 0.17x.y    # another version; then update DEFAULT_VERSION/DEFAULT_INTEGRITY in the script"
  echo '```'
  echo
  echo "By hand, the script does:"
  echo
  echo '```sh'
  echo "D=\"\$PWD/api/web/static/vendor/three\"   # run from the repo root"
  echo "mkdir -p \"\$D\" && cd \"\$(mktemp -d)\""
  echo "npm pack three@$VERSION                 # -> $TARBALL"
  echo "npm view three@$VERSION dist.integrity  # must equal \"sha512-\" + base64(sha512(tarball))"
  echo "tar xzf $TARBALL               # -> package/"
  for name in $(printf '%s\n' "${!SRC_OF[@]}" | sort); do
    echo "cp package/${SRC_OF[$name]} \"\$D/\""
  done
  echo "cp package/LICENSE \"\$D/LICENSE\""
  for name in $(printf '%s\n' "${!REWRITES[@]}" | sort); do
    while IFS='|' read -r from to; do
      [[ -z "$from" ]] && continue
      echo "sed -i \"s#from '$from'#from '$to'#\" \"\$D/$name\""
    done <<< "${REWRITES[$name]}"
  done
  echo '```'
} > "$OUT/README.md"

# Replace the folder.
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
cp -r "$OUT" "$DEST"
echo ">> wrote $DEST:"
ls -l "$DEST"
