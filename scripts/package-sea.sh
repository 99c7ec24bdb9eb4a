#!/usr/bin/env bash
# The rejected alternative to the bundled Node binary, built only to measure it (docs/packaging.md,
# `npm run bench -- package`): a Node single executable application of the CLI. dist/ is bundled
# to one CJS file (packaging/sea/vite.config.mjs), made into a SEA blob with the bundled node
# (--experimental-sea-config) and injected into a copy of that node with postject (from npm).
# Output: dist-pkg/sea/flotilla-sea. Needs `npm run build` and the node cache of package.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
major=${FLOTILLA_NODE_MAJOR:-22}
[[ $major =~ ^[0-9]+$ ]] || { echo "FLOTILLA_NODE_MAJOR must be a number" >&2; exit 2; }
node=${FLOTILLA_BUILD_CACHE:-/var/cache/flotilla-build}/node/$major/package/bin/node
[ -x "$node" ] || { echo "no $node: run npm run package first" >&2; exit 1; }
[ -f dist/cli/main.js ] || { echo "no dist/: run npm run build first" >&2; exit 1; }
out=$(pwd)/dist-pkg/sea
mkdir -p "$out"
FLOTILLA_SEA_OUT="$out/bundle" npx vite build --config packaging/sea/vite.config.mjs >&2
{
  cat "$out/bundle/bundle.cjs"
  echo
  echo 'exports.main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { console.error((e && e.stack) || String(e)); process.exitCode = 1; });'
} >"$out/sea-main.cjs"
printf '{"main":"%s","output":"%s","disableExperimentalSEAWarning":true,"useCodeCache":true}\n' \
  "$out/sea-main.cjs" "$out/sea-prep.blob" >"$out/sea-config.json"
"$node" --experimental-sea-config "$out/sea-config.json" >&2
cp "$node" "$out/flotilla-sea"
npm exec --yes --package=postject@1.0.0-alpha.6 -- postject "$out/flotilla-sea" NODE_SEA_BLOB \
  "$out/sea-prep.blob" --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >&2
echo "$out/flotilla-sea"
